package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

// ReplacesLabel is set on a replacement container to the id of the container
// it replaced, for whoever reads `docker inspect` later.
const ReplacesLabel = "beatwatch.replaces"

// undoTimeout bounds putting things back after a failed Replace. It runs even
// when the caller's context is done: a half-done replacement (the old
// container renamed and stopped) is worse than a late one.
const undoTimeout = 30 * time.Second

// Replace puts a new container of the same configuration in c's place: same
// image, command, entrypoint, environment, labels, mounts, working directory,
// user, host configuration and networks, and the same name. The old
// container is renamed to <name>-replaced-<unix time>, the new one created
// under the old name and started (the old one is stopped first, with grace,
// if it still runs), and only then is the old one removed, its volumes kept.
// If anything before that fails, the new container is removed and the old
// one gets its name back (and is started again if it was running), so a
// failed Replace leaves things as they were. A container without the
// recover label is refused with ErrNotEligible.
//
// The hostname is kept: beatwrap derives an agent's id from the host name
// when it is not given --id, so a new hostname would turn the replacement
// into a different agent and leave the old one failed forever.
//
// The image is the one the old container ran: its name when that still
// points to the same image, else the image's id, so that a tag moved since
// (a newer :latest) does not sneak an upgrade into a recovery.
func (d *Engine) Replace(ctx context.Context, c Container, grace time.Duration) (Replacement, error) {
	newID, detail, err := d.replace(ctx, c, grace)
	return Replacement{ID: newID, Detail: detail}, err
}

// Replacement is what Replace did: the new container, and a few words on
// the old one.
type Replacement struct {
	ID     string
	Detail string
}

func (d *Engine) replace(ctx context.Context, c Container, grace time.Duration) (newID, detail string, err error) {
	old, err := d.eligible(ctx, c)
	if err != nil {
		return "", "", err
	}
	name := strings.TrimPrefix(old.Name, "/")
	spec := replacementSpec(old, d.image(ctx, old))
	aside := fmt.Sprintf("%s-replaced-%d", name, d.now().Unix())
	if err := d.engine.Rename(ctx, old.ID, aside); err != nil {
		return "", "", fmt.Errorf("rename container %s to %s: %w", short(old.ID), aside, err)
	}

	stopped := false
	undo := func(newID string, cause error) error {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
		defer cancel()
		var errs []error
		if newID != "" {
			if err := d.engine.Remove(uctx, newID); err != nil && !errors.Is(err, ErrNotFound) {
				errs = append(errs, fmt.Errorf("remove new container %s: %w", short(newID), err))
			}
		}
		if err := d.engine.Rename(uctx, old.ID, name); err != nil {
			errs = append(errs, fmt.Errorf("rename container %s back to %s: %w", short(old.ID), name, err))
		}
		if stopped {
			if err := d.engine.Start(uctx, old.ID); err != nil {
				errs = append(errs, fmt.Errorf("start container %s again: %w", short(old.ID), err))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w; undo: %w", cause, errors.Join(errs...))
		}
		return cause
	}

	newID, err = d.engine.Create(ctx, name, spec.cfg, spec.host, spec.net)
	if err != nil {
		return "", "", undo("", fmt.Errorf("create replacement of %s: %w", short(old.ID), err))
	}
	for _, n := range slices.Sorted(maps.Keys(spec.extra)) {
		if err := d.engine.Connect(ctx, n, newID, spec.extra[n]); err != nil {
			return "", "", undo(newID, fmt.Errorf("connect container %s to network %s: %w", short(newID), n, err))
		}
	}
	// A stalled agent's container still runs: stop it before the new one
	// starts, so the two never bind the same ports or beat as one agent.
	if old.State.Running || old.State.Restarting || old.State.Paused {
		if err := d.engine.Stop(ctx, old.ID, d.stopTimeout(ctx, old, grace)); err != nil {
			return "", "", undo(newID, fmt.Errorf("stop container %s: %w", short(old.ID), err))
		}
		stopped = true
	}
	if err := d.engine.Start(ctx, newID); err != nil {
		return "", "", undo(newID, fmt.Errorf("start container %s: %w", short(newID), err))
	}
	if err := d.running(ctx, newID); err != nil {
		return "", "", undo(newID, err)
	}
	detail = "replaced " + short(old.ID)
	if err := d.engine.Remove(ctx, old.ID); err != nil && !errors.Is(err, ErrNotFound) {
		// The agent runs again; the old container is only clutter now.
		d.log.Warn("remove replaced container", "agent", c.Agent, "container", short(old.ID), "error", err)
		detail = fmt.Sprintf("replaced %s, left as %s: %v", short(old.ID), aside, err)
	}
	return newID, detail, nil
}

// image picks the image for the replacement of old (see Replace).
func (d *Engine) image(ctx context.Context, old container.InspectResponse) string {
	if old.Config.Image != "" {
		if id, err := d.engine.ImageID(ctx, old.Config.Image); err == nil && id == old.Image {
			return old.Config.Image
		}
	}
	if old.Image != "" {
		return old.Image
	}
	return old.Config.Image
}

// spec is what the engine needs to create a container.
type spec struct {
	cfg  *container.Config
	host *container.HostConfig
	// net holds the endpoint of the network the container is created on;
	// engines before API 1.44 take only one network at create.
	net *network.NetworkingConfig
	// extra holds the other networks, connected before the start.
	extra map[string]*network.EndpointSettings
}

// replacementSpec copies old's configuration for a new container running
// image, clearing what belongs to the old container's life only: its
// container-id file, its MAC and IP addresses as the engine assigned them,
// and the alias that is its short id.
func replacementSpec(old container.InspectResponse, image string) spec {
	cfg := *old.Config
	cfg.Image = image
	cfg.Labels = maps.Clone(old.Config.Labels)
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	cfg.Labels[ReplacesLabel] = old.ID

	host := *old.HostConfig
	// The engine refuses a hostname next to a shared UTS or network
	// namespace; the container gets the namespace's own then.
	if host.UTSMode.IsHost() || host.NetworkMode.IsContainer() {
		cfg.Hostname = ""
	}
	// The CLI writes this file; a daemon never reads it back, and a new
	// container must not claim the old one's.
	host.ContainerIDFile = ""
	host.Mounts = append(slices.Clone(old.HostConfig.Mounts), keptVolumes(old)...)

	s := spec{cfg: &cfg, host: &host, net: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}, extra: map[string]*network.EndpointSettings{}}
	if old.NetworkSettings == nil || host.NetworkMode.IsContainer() {
		return s
	}
	primary := string(host.NetworkMode)
	if primary == "" || primary == "default" {
		primary = "bridge"
	}
	for n, ep := range old.NetworkSettings.Networks {
		if ep == nil {
			continue
		}
		e := endpoint(ep, old.ID)
		if n == primary || (ep.NetworkID != "" && strings.HasPrefix(ep.NetworkID, primary)) {
			s.net.EndpointsConfig[n] = e
		} else {
			s.extra[n] = e
		}
	}
	return s
}

// endpoint copies the configuration of a network endpoint and drops what the
// engine filled in for the old container.
func endpoint(ep *network.EndpointSettings, oldID string) *network.EndpointSettings {
	e := &network.EndpointSettings{
		Links:      slices.Clone(ep.Links),
		DriverOpts: maps.Clone(ep.DriverOpts),
		GwPriority: ep.GwPriority,
	}
	if ep.IPAMConfig != nil {
		ipam := *ep.IPAMConfig
		e.IPAMConfig = &ipam
	}
	for _, a := range ep.Aliases {
		if a != short(oldID) && a != oldID {
			e.Aliases = append(e.Aliases, a)
		}
	}
	return e
}

// keptVolumes returns a mount for each volume of old that its configuration
// does not name (anonymous volumes, from the image's VOLUME or from -v /path,
// and those of --volumes-from), so the new container gets the same data
// instead of empty new volumes.
func keptVolumes(old container.InspectResponse) []mount.Mount {
	named := map[string]bool{}
	for _, b := range old.HostConfig.Binds {
		parts := strings.Split(b, ":")
		if len(parts) >= 2 {
			named[parts[1]] = true
		} else {
			named[parts[0]] = true
		}
	}
	for _, m := range old.HostConfig.Mounts {
		named[m.Target] = true
	}
	var out []mount.Mount
	for _, m := range old.Mounts {
		if m.Type != mount.TypeVolume || m.Name == "" || named[m.Destination] {
			continue
		}
		out = append(out, mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: m.Destination, ReadOnly: !m.RW})
	}
	return out
}
