package docker

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/testutil/dockerd"
)

// TestDockerNoGrace: a first process that is stopped, or has no handler
// for the stop signal, gets no stop timeout; one that runs and handles it
// keeps its grace.
func TestDockerNoGrace(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()
	d := newDocker(t, e)
	// sh as PID 1, with a handler for SIGTERM.
	trapped := "trap 'exit 0' TERM; while true; do sleep 0.1; done"
	timeout := func(c Container) int {
		t.Helper()
		info, err := e.Inspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		p := d.stopTimeout(ctx, info, 10*time.Second)
		if p == nil {
			t.Fatalf("stop timeout nil: the container's default, want a number")
		}
		return *p
	}

	busy := startBox(t, e, box{agent: "grace-busy", label: true, cmd: trapped})
	if got := timeout(busy); got != 10 {
		t.Errorf("running, handles SIGTERM: stop timeout %d, want the grace, 10", got)
	}

	frozen := startBox(t, e, box{agent: "grace-frozen", label: true, cmd: trapped})
	info, _ := e.Inspect(ctx, frozen.ID)
	if err := syscall.Kill(info.State.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if got := timeout(frozen); got != 0 {
		t.Errorf("PID 1 stopped: stop timeout %d, want 0", got)
	}
	start := time.Now()
	if err := d.Restart(ctx, frozen, 30*time.Second); err != nil {
		t.Fatalf("Restart = %v", err)
	}
	// The grace given is 30s: a restart that waited it out fails here.
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("restart of a stopped PID 1 took %v: the grace was waited out", took)
	}
	if after := waitState(t, e, frozen.ID, container.StateRunning); after.State.Pid == info.State.Pid {
		t.Errorf("the same process runs after the restart")
	}

	// busybox sleep as PID 1 has no handler: SIGTERM never reaches it.
	deaf := startBox(t, e, box{agent: "grace-deaf", label: true, cmd: "exec sleep 600"})
	if got := timeout(deaf); got != 0 {
		t.Errorf("PID 1 without a SIGTERM handler: stop timeout %d, want 0", got)
	}
}

// TestDockerNamespace: a container labelled for another namespace is never
// touched, nor taken for this fleet's agent of the same name.
func TestDockerNamespace(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()
	d, err := newEngine(e, Config{Namespace: "fleet-a"})
	if err != nil {
		t.Fatal(err)
	}
	other := startBox(t, e, box{agent: "ns-1", label: true, labels: map[string]string{NamespaceLabel: "fleet-b"}})
	if _, err := d.Find(ctx, "ns-1", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find by label = %v; want ErrNotFound: the only ns-1 is fleet-b's", err)
	}
	c, err := d.Find(ctx, "ns-1", other.ID)
	if err != nil || !c.Foreign || c.Eligible || c.Namespace != "fleet-b" {
		t.Fatalf("Find by id = %+v, %v; want it, foreign, not eligible", c, err)
	}
	if err := d.Restart(ctx, c, time.Second); !errors.Is(err, ErrNotEligible) {
		t.Errorf("Restart = %v; want ErrNotEligible", err)
	}
	ours := startBox(t, e, box{agent: "ns-1", label: true, labels: map[string]string{NamespaceLabel: "fleet-a"}})
	if c, err := d.Find(ctx, "ns-1", ""); err != nil || c.ID != ours.ID || !c.Eligible {
		t.Errorf("Find by label = %+v, %v; want fleet-a's container %s", c, err, ours.ShortID())
	}
	plain := startBox(t, e, box{agent: "ns-2", label: true})
	got, err := d.AgentContainers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["ns-1"] != ours.ID || got["ns-2"] != plain.ID {
		t.Errorf("AgentContainers = %v; want ns-1 -> %s (fleet-a's), ns-2 -> %s (no namespace)", got, ours.ShortID(), plain.ShortID())
	}
}

// TestDialTLS: a tcp:// engine is reached over mutual TLS from
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the Docker CLI does, while a
// unix socket ignores them; each engine says its own ID.
func TestDialTLS(t *testing.T) {
	testutil.RequireDocker(t)
	b := dockerd.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	identify := func(host string) (string, error) {
		d, err := Dial(host, Config{})
		if err != nil {
			return "", err
		}
		defer d.Close()
		id, _, err := d.Identify(ctx)
		return id, err
	}
	if _, err := identify(b.TLSHost()); err == nil {
		t.Errorf("the TLS port answered a client without TLS")
	}
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	t.Setenv("DOCKER_CERT_PATH", b.CertPath())
	for _, host := range []string{b.TLSHost(), b.Host()} {
		if id, err := identify(host); err != nil || id != b.ID() {
			t.Errorf("Identify at %s = %q, %v; want %q", host, id, err, b.ID())
		}
	}
	sys, err := identify("")
	if err != nil || sys == b.ID() {
		t.Errorf("the system engine says ID %q, %v; want its own, not %q", sys, err, b.ID())
	}
}
