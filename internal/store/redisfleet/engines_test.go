package redisfleet

import (
	"context"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestEngineLeasesLocationsIncidents: what replicas share to split Docker
// Engines among them, on a real Redis.
func TestEngineLeasesLocationsIncidents(t *testing.T) {
	w, err := NewWatcher(testutil.RedisURL(t), store.Options{Namespace: testutil.Namespace(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()

	// A lease per engine: one holder each, independent of the others.
	if ok, err := w.LeaseEngine(ctx, "E1", "r1", time.Minute); !ok || err != nil {
		t.Fatalf("r1 takes E1: %v, %v", ok, err)
	}
	if ok, _ := w.LeaseEngine(ctx, "E1", "r2", time.Minute); ok {
		t.Errorf("r2 took E1 while r1 holds it")
	}
	if ok, _ := w.LeaseEngine(ctx, "E2", "r2", time.Minute); !ok {
		t.Errorf("r2 could not take E2")
	}
	if h, _ := w.EngineLeaseHolder(ctx, "E1"); h != "r1" {
		t.Errorf("E1 held by %q, want r1", h)
	}
	if err := w.ReleaseEngineLease(ctx, "E1", "r2"); err != nil {
		t.Fatal(err)
	}
	if h, _ := w.EngineLeaseHolder(ctx, "E1"); h != "r1" {
		t.Errorf("r2 released r1's lease of E1")
	}
	_ = w.ReleaseEngineLease(ctx, "E1", "r1")
	if h, _ := w.EngineLeaseHolder(ctx, "E1"); h != "" {
		t.Errorf("E1 still held by %q after its release", h)
	}
	if ok, _ := w.LeaseEngine(ctx, "E3", "r1", 100*time.Millisecond); !ok {
		t.Fatal("take E3")
	}
	testutil.Eventually(t, 5*time.Second, "a lease not renewed runs out", func() bool {
		h, _ := w.EngineLeaseHolder(ctx, "E3")
		return h == ""
	})

	loc := Location{Engine: "E1", Host: "vm", DockerHost: "tcp://10.0.0.1:2376", Container: "abc"}
	if err := w.SetLocation(ctx, "agent-1", loc, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := w.AgentLocation(ctx, "agent-1"); !ok || err != nil || got != loc {
		t.Errorf("AgentLocation = %+v, %v, %v; want %+v", got, ok, err, loc)
	}
	if _, ok, err := w.AgentLocation(ctx, "agent-2"); ok || err != nil {
		t.Errorf("AgentLocation of an agent never recorded = %v, %v", ok, err)
	}

	if ok, _ := w.OpenIncident(ctx, "engine:E1", "r1", time.Minute); !ok {
		t.Errorf("r1 could not open the incident")
	}
	if ok, _ := w.OpenIncident(ctx, "engine:E1", "r2", time.Minute); ok {
		t.Errorf("r2 opened an incident already open")
	}
	if open, _ := w.IncidentOpen(ctx, "engine:E1"); !open {
		t.Errorf("incident not open")
	}
	if closed, _ := w.CloseIncident(ctx, "engine:E1"); !closed {
		t.Errorf("closing an open incident said it was not open")
	}
	if closed, _ := w.CloseIncident(ctx, "engine:E1"); closed {
		t.Errorf("closing it twice said it was open")
	}
}
