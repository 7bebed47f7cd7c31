package docker

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

const oldID = "abc123def4567890abc123def4567890abc123def4567890abc123def4567890"

func oldContainer() container.InspectResponse {
	return container.InspectResponse{
		ID:    oldID,
		Name:  "/summariser",
		Image: "sha256:1111",
		State: &container.State{Status: container.StateExited, ExitCode: 137},
		Config: &container.Config{
			Hostname:   "abc123def456",
			Image:      "agents/summariser:1.4",
			Env:        []string{"FOO=bar"},
			Cmd:        []string{"run"},
			Entrypoint: []string{"/usr/bin/beatwrap", "--"},
			WorkingDir: "/app",
			User:       "1000:1000",
			Labels:     map[string]string{"beatwatch.recover": "true", "beatwatch.agent": "summariser"},
			Volumes:    map[string]struct{}{"/data": {}},
		},
		HostConfig: &container.HostConfig{
			ContainerIDFile: "/tmp/cid",
			NetworkMode:     "agents",
			RestartPolicy:   container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3},
			Binds:           []string{"/etc/agent:/etc/agent:ro", "models:/models"},
			Mounts:          []mount.Mount{{Type: mount.TypeBind, Source: "/srv/cache", Target: "/cache"}},
		},
		Mounts: []container.MountPoint{
			{Type: mount.TypeBind, Source: "/etc/agent", Destination: "/etc/agent"},
			{Type: mount.TypeVolume, Name: "models", Destination: "/models", RW: true},
			{Type: mount.TypeBind, Source: "/srv/cache", Destination: "/cache", RW: true},
			{Type: mount.TypeVolume, Name: "9f8e7d", Destination: "/data", RW: true},
		},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"agents": {
				NetworkID:  "n1",
				Aliases:    []string{"abc123def456", "summariser"},
				IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("10.0.0.9")},
				IPAddress:  netip.MustParseAddr("10.0.0.9"),
				MacAddress: network.HardwareAddr{2, 66, 10, 0, 0, 9},
				EndpointID: "e1",
			},
			"monitoring": {NetworkID: "n2", Aliases: []string{"abc123def456"}, IPAddress: netip.MustParseAddr("10.1.0.3")},
		}},
	}
}

func TestReplacementSpec(t *testing.T) {
	old := oldContainer()
	s := replacementSpec(old, "sha256:1111")

	if s.cfg.Image != "sha256:1111" {
		t.Errorf("image %q", s.cfg.Image)
	}
	if s.cfg.Hostname != "abc123def456" {
		t.Errorf("hostname %q, want the old one kept", s.cfg.Hostname)
	}
	if !slices.Equal(s.cfg.Env, old.Config.Env) || !slices.Equal(s.cfg.Cmd, old.Config.Cmd) ||
		!slices.Equal(s.cfg.Entrypoint, old.Config.Entrypoint) || s.cfg.WorkingDir != "/app" || s.cfg.User != "1000:1000" {
		t.Errorf("config not copied: %+v", s.cfg)
	}
	if s.cfg.Labels["beatwatch.agent"] != "summariser" || s.cfg.Labels[ReplacesLabel] != oldID {
		t.Errorf("labels %v", s.cfg.Labels)
	}
	if _, ok := old.Config.Labels[ReplacesLabel]; ok {
		t.Error("the old container's labels were changed")
	}
	if s.host.ContainerIDFile != "" {
		t.Errorf("ContainerIDFile %q, want cleared", s.host.ContainerIDFile)
	}
	if s.host.RestartPolicy != old.HostConfig.RestartPolicy || !slices.Equal(s.host.Binds, old.HostConfig.Binds) {
		t.Errorf("host config not copied: %+v", s.host)
	}
	wantMounts := []mount.Mount{
		{Type: mount.TypeBind, Source: "/srv/cache", Target: "/cache"},
		{Type: mount.TypeVolume, Source: "9f8e7d", Target: "/data"},
	}
	if !slices.Equal(s.host.Mounts, wantMounts) {
		t.Errorf("mounts %+v, want %+v", s.host.Mounts, wantMounts)
	}
	if len(old.HostConfig.Mounts) != 1 {
		t.Error("the old container's mounts were changed")
	}

	ep := s.net.EndpointsConfig["agents"]
	if len(s.net.EndpointsConfig) != 1 || ep == nil {
		t.Fatalf("create endpoints %v, want only the primary network", s.net.EndpointsConfig)
	}
	if !slices.Equal(ep.Aliases, []string{"summariser"}) {
		t.Errorf("aliases %v, want the old short id dropped", ep.Aliases)
	}
	if ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address.String() != "10.0.0.9" {
		t.Errorf("static address lost: %+v", ep.IPAMConfig)
	}
	if ep.IPAddress.IsValid() || ep.MacAddress != nil || ep.EndpointID != "" || ep.NetworkID != "" {
		t.Errorf("runtime fields kept: %+v", ep)
	}
	if mon := s.extra["monitoring"]; len(s.extra) != 1 || mon == nil || len(mon.Aliases) != 0 {
		t.Errorf("extra networks %v", s.extra)
	}
}

func TestReplacementSpecNamespaces(t *testing.T) {
	tests := []struct {
		name         string
		host         container.HostConfig
		wantHostname string
		wantNets     int
	}{
		{"host network", container.HostConfig{NetworkMode: "host"}, "abc123def456", 1},
		{"shared netns", container.HostConfig{NetworkMode: "container:other"}, "", 0},
		{"host uts", container.HostConfig{NetworkMode: "host", UTSMode: "host"}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := oldContainer()
			old.HostConfig = &tt.host
			old.NetworkSettings.Networks = map[string]*network.EndpointSettings{}
			if tt.wantNets > 0 {
				old.NetworkSettings.Networks[string(tt.host.NetworkMode)] = &network.EndpointSettings{NetworkID: "h"}
			}
			s := replacementSpec(old, "img")
			if s.cfg.Hostname != tt.wantHostname {
				t.Errorf("hostname %q, want %q", s.cfg.Hostname, tt.wantHostname)
			}
			if got := len(s.net.EndpointsConfig); got != tt.wantNets || len(s.extra) != 0 {
				t.Errorf("endpoints %v extra %v, want %d", s.net.EndpointsConfig, s.extra, tt.wantNets)
			}
		})
	}
}

func TestParseLabel(t *testing.T) {
	tests := []struct {
		in         string
		key, value string
		ok         bool
	}{
		{"beatwatch.recover=true", "beatwatch.recover", "true", true},
		{"a=", "a", "", true},
		{"a=b=c", "a", "b=c", true},
		{"novalue", "", "", false},
		{"=x", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, v, err := ParseLabel(tt.in)
			if (err == nil) != tt.ok || k != tt.key || v != tt.value {
				t.Fatalf("ParseLabel(%q) = %q, %q, %v", tt.in, k, v, err)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		state, policy string
		finalStopped  bool
		want          Verdict
	}{
		{"running", "no", false, VerdictRunning},
		{"running", "no", true, VerdictRunning},
		{"exited", "no", false, VerdictCrashed},
		{"exited", "on-failure", false, VerdictCrashed},
		{"exited", "no", true, VerdictOperatorStopped},
		{"created", "no", true, VerdictOperatorStopped},
		{"created", "no", false, VerdictCrashed},
		{"exited", "always", false, VerdictOperatorStopped},
		{"exited", "unless-stopped", false, VerdictOperatorStopped},
		{"paused", "no", false, VerdictPaused},
		{"removing", "no", false, VerdictRemoved},
		{"restarting", "always", false, VerdictRestarting},
		{"dead", "no", false, VerdictCrashed},
	}
	for _, tt := range tests {
		t.Run(tt.state+"/"+tt.policy, func(t *testing.T) {
			if got := judge(Container{State: tt.state, RestartPolicy: tt.policy}, tt.finalStopped); got != tt.want {
				t.Fatalf("judge = %s, want %s", got, tt.want)
			}
		})
	}
}

// inspectEngine answers Inspect from a script of states; the other methods
// are not used by Check.
type inspectEngine struct {
	api
	states []container.ContainerState
	calls  int
}

func (e *inspectEngine) Inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	st := e.states[min(e.calls, len(e.states)-1)]
	e.calls++
	if st == "" {
		return container.InspectResponse{}, ErrNotFound
	}
	return container.InspectResponse{
		ID:         id,
		State:      &container.State{Status: st, Running: st == container.StateRunning},
		Config:     &container.Config{Labels: map[string]string{"beatwatch.recover": "true"}},
		HostConfig: &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways}},
	}, nil
}

func TestCheckWaitsForRestarting(t *testing.T) {
	const r, up = container.StateRestarting, container.StateRunning
	tests := []struct {
		name    string
		states  []container.ContainerState
		want    Verdict
		atLeast int // inspections
	}{
		{"comes back", []container.ContainerState{r, r, up}, VerdictRestartedByEngine, 3},
		{"keeps restarting", []container.ContainerState{r}, VerdictRestarting, 2},
		{"removed meanwhile", []container.ContainerState{r, ""}, VerdictRemoved, 2},
		{"running", []container.ContainerState{up}, VerdictRunning, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &inspectEngine{states: tt.states}
			d, err := newEngine(e, Config{RestartingWait: 50 * time.Millisecond, PollInterval: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, v, err := d.Check(context.Background(), Container{ID: "c1", Agent: "a"}, false)
			if v != tt.want || err != nil {
				t.Fatalf("Check = %s, %v; want %s", v, err, tt.want)
			}
			if e.calls < tt.atLeast {
				t.Fatalf("%d inspections, want at least %d", e.calls, tt.atLeast)
			}
		})
	}
}

func TestCheckContextDone(t *testing.T) {
	e := &inspectEngine{states: []container.ContainerState{container.StateRestarting}}
	d, err := newEngine(e, Config{RestartingWait: time.Hour, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := d.Check(ctx, Container{ID: "c1"}, false)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Check = %v, want the context's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Check did not return when its context ended")
	}
}
