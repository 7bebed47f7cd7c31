package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// api is the part of the Docker Engine API that an Engine uses, in the
// client's own types. mobyAPI is the real one; a test may wrap it to make
// one call fail on cue.
type api interface {
	// Inspect returns a container's full configuration and state.
	Inspect(ctx context.Context, id string) (container.InspectResponse, error)
	// List returns all containers, running or not, that carry the label
	// key=value.
	List(ctx context.Context, key, value string) ([]container.Summary, error)
	// ImageID resolves an image reference to its id.
	ImageID(ctx context.Context, ref string) (string, error)
	// Restart stops the container (SIGTERM, then SIGKILL after timeout
	// seconds; nil for the container's own default) and starts it again.
	Restart(ctx context.Context, id string, timeout *int) error
	// Stop stops the container like Restart does, without starting it.
	Stop(ctx context.Context, id string, timeout *int) error
	// Create creates a container and returns its id.
	Create(ctx context.Context, name string, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig) (string, error)
	// Connect attaches a container to one more network.
	Connect(ctx context.Context, networkID, id string, ep *network.EndpointSettings) error
	// Start starts a created or stopped container.
	Start(ctx context.Context, id string) error
	// Rename gives a container a new name.
	Rename(ctx context.Context, id, name string) error
	// Remove removes a container even when it runs, and keeps its volumes.
	Remove(ctx context.Context, id string) error
	// ListLabeled returns all containers, running or not, that carry the
	// label key, whatever its value.
	ListLabeled(ctx context.Context, key string) ([]container.Summary, error)
	// Top runs ps with args on the engine's host for the container's
	// processes: the column titles, and one row per process.
	Top(ctx context.Context, id string, args []string) (titles []string, procs [][]string, err error)
	// Info returns the engine's own ID and its host's name.
	Info(ctx context.Context) (id, name string, err error)
}

// ErrNotFound: the container (or image) does not exist.
var ErrNotFound = errors.New("not found")

// mobyAPI is the api of a real Docker daemon, a thin layer over the
// Docker client.
type mobyAPI struct {
	c    *client.Client
	host string
}

// dialAPI connects to the Docker Engine at host (a DOCKER_HOST style
// address such as unix:///var/run/docker.sock or tcp://host:2376), or, when
// host is empty, at $DOCKER_HOST, else the local socket. A tcp:// engine is
// spoken to the way the Docker CLI does: over TLS when DOCKER_TLS_VERIFY is
// set, with ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH (default
// ~/.docker), verifying the engine's certificate; a unix socket never uses
// TLS, so one beatwatch can reach a local and a remote engine at once.
// DOCKER_API_VERSION pins the API version; otherwise it is negotiated on
// first use, so an engine as old as API 1.40 is spoken to in its own
// version. No connection is made until the first call; use Ping to check
// that the engine is there.
func dialAPI(host string, getenv func(string) string) (*mobyAPI, error) {
	if host == "" {
		host = getenv("DOCKER_HOST")
	}
	if host == "" {
		host = client.DefaultDockerHost
	}
	opts := []client.Opt{client.WithHost(host)}
	if v := getenv("DOCKER_API_VERSION"); v != "" {
		opts = append(opts, client.WithAPIVersion(v))
	}
	if strings.HasPrefix(host, "tcp://") && getenv("DOCKER_TLS_VERIFY") != "" {
		dir := getenv("DOCKER_CERT_PATH")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return nil, fmt.Errorf("docker client for %q: DOCKER_TLS_VERIFY is set and DOCKER_CERT_PATH is not: %w", host, err)
			}
			dir = filepath.Join(home, ".docker")
		}
		opts = append(opts, client.WithTLSClientConfig(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")))
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", host, err)
	}
	return &mobyAPI{c: c, host: host}, nil
}

// Ping checks that the engine answers.
func (e *mobyAPI) Ping(ctx context.Context) error {
	if _, err := e.c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("ping docker engine at %s: %w", e.host, mapErr(err))
	}
	return nil
}

// Close releases the client's connections.
func (e *mobyAPI) Close() error { return e.c.Close() }

// Inspect implements api.
func (e *mobyAPI) Inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	return res.Container, mapErr(err)
}

// List implements api.
func (e *mobyAPI) List(ctx context.Context, key, value string) ([]container.Summary, error) {
	f := client.Filters{}
	f.Add("label", key+"="+value)
	res, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	return res.Items, mapErr(err)
}

// ImageID implements api.
func (e *mobyAPI) ImageID(ctx context.Context, ref string) (string, error) {
	res, err := e.c.ImageInspect(ctx, ref)
	return res.ID, mapErr(err)
}

// Restart implements api.
func (e *mobyAPI) Restart(ctx context.Context, id string, timeout *int) error {
	_, err := e.c.ContainerRestart(ctx, id, client.ContainerRestartOptions{Timeout: timeout})
	return mapErr(err)
}

// Stop implements api.
func (e *mobyAPI) Stop(ctx context.Context, id string, timeout *int) error {
	_, err := e.c.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: timeout})
	return mapErr(err)
}

// Create implements api.
func (e *mobyAPI) Create(ctx context.Context, name string, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig) (string, error) {
	res, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name, Config: cfg, HostConfig: host, NetworkingConfig: net,
	})
	return res.ID, mapErr(err)
}

// Connect implements api.
func (e *mobyAPI) Connect(ctx context.Context, networkID, id string, ep *network.EndpointSettings) error {
	_, err := e.c.NetworkConnect(ctx, networkID, client.NetworkConnectOptions{Container: id, EndpointConfig: ep})
	return mapErr(err)
}

// Start implements api.
func (e *mobyAPI) Start(ctx context.Context, id string) error {
	_, err := e.c.ContainerStart(ctx, id, client.ContainerStartOptions{})
	return mapErr(err)
}

// Rename implements api.
func (e *mobyAPI) Rename(ctx context.Context, id, name string) error {
	_, err := e.c.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: name})
	return mapErr(err)
}

// ListLabeled implements api.
func (e *mobyAPI) ListLabeled(ctx context.Context, key string) ([]container.Summary, error) {
	f := client.Filters{}
	f.Add("label", key)
	res, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	return res.Items, mapErr(err)
}

// Top implements api.
func (e *mobyAPI) Top(ctx context.Context, id string, args []string) ([]string, [][]string, error) {
	res, err := e.c.ContainerTop(ctx, id, client.ContainerTopOptions{Arguments: args})
	return res.Titles, res.Processes, mapErr(err)
}

// Info implements api.
func (e *mobyAPI) Info(ctx context.Context) (string, string, error) {
	res, err := e.c.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", "", fmt.Errorf("info of docker engine at %s: %w", e.host, mapErr(err))
	}
	return res.Info.ID, res.Info.Name, nil
}

// Remove implements api.
func (e *mobyAPI) Remove(ctx context.Context, id string) error {
	_, err := e.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	return mapErr(err)
}

// mapErr keeps the engine's message and makes a missing object match
// ErrNotFound, and an engine that cannot be connected to ErrUnreachable, so
// that nothing outside this file needs the client's error types.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return notFoundError{err}
	case client.IsErrConnectionFailed(err):
		return unreachableError{err}
	}
	return err
}

// ErrUnreachable: the engine cannot be connected to (it is down, or its
// host is).
var ErrUnreachable = errors.New("docker engine unreachable")

type unreachableError struct{ err error }

func (e unreachableError) Error() string        { return e.err.Error() }
func (e unreachableError) Unwrap() error        { return e.err }
func (e unreachableError) Is(target error) bool { return target == ErrUnreachable }

type notFoundError struct{ err error }

func (e notFoundError) Error() string        { return e.err.Error() }
func (e notFoundError) Unwrap() error        { return e.err }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }
