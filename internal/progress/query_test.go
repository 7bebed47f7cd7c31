package progress

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// startQueryServer serves a fresh socket with a health query that answers
// h, and returns the path and the tracker reports go to.
func startQueryServer(t *testing.T, h sockline.Health) (string, *Tracker) {
	t.Helper()
	srv, err := Listen(socketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(TrackerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(ctx, Handler{Report: tr.Apply, Queries: map[string]func() (any, error){
			sockline.QueryHealth: func() (any, error) { return h, nil },
			"broken":             func() (any, error) { return nil, errors.New("nothing to say") },
		}})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return srv.Path(), tr
}

func TestQueryLines(t *testing.T) {
	want := sockline.Health{Status: wire.StatusStalled, Reason: "no progress for 5m0s", SinceMs: 1200}
	path, tr := startQueryServer(t, want)
	c := dialRaw(t, path)

	c.write(t, `{"query":"health"}`+"\n")
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, `{"ok":true,"status":"stalled","live":false,"reason":"no progress for 5m0s","sinceMs":1200}`) {
		t.Errorf("health reply = %q", line)
	}
	if got := c.send(t, `{"query":"nope"}`); got.OK || !strings.Contains(got.Error, `query "nope" is not known (known: broken, health)`) {
		t.Errorf("unknown query: %+v", got)
	}
	if got := c.send(t, `{"query":"broken"}`); got.OK || got.Error != `query "broken": nothing to say` {
		t.Errorf("failing query: %+v", got)
	}
	if got := c.send(t, `{"query":"health","task":"x"}`); got.OK || !strings.Contains(got.Error, "task") {
		t.Errorf("query with a report field: %+v", got)
	}
	// Queries are not progress and change nothing; the connection still
	// takes reports.
	if n := tr.Snapshot().Reports; n != 0 {
		t.Errorf("%d reports applied after queries alone", n)
	}
	if got := c.send(t, `{"task":"t"}`); !got.OK {
		t.Errorf("report after queries: %+v", got)
	}

	var h sockline.Health
	if err := Query(context.Background(), path, sockline.QueryHealth, &h); err != nil || h != want {
		t.Errorf("Query = %+v, %v; want %+v", h, err, want)
	}
	if err := Query(context.Background(), path, "nope", &h); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Query(nope) = %v, want ErrRefused naming it", err)
	}
}

func TestFindSocket(t *testing.T) {
	xdg, err := os.MkdirTemp("", "fs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(xdg) })
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	dir := filepath.Join(xdg, "beatwrap")

	if got, err := FindSocket("agent-1"); err != nil || got != filepath.Join(dir, "agent-1.sock") {
		t.Errorf("FindSocket(agent-1) = %q, %v", got, err)
	}
	if _, err := FindSocket(""); !errors.Is(err, ErrNoSocket) {
		t.Errorf("no folder: %v, want ErrNoSocket", err)
	}
	a, err := Listen(filepath.Join(dir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := FindSocket(""); err != nil || got != a.Path() {
		t.Errorf("one socket: %q, %v; want %s", got, err, a.Path())
	}
	// A socket left by a crashed run is passed over.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "stale.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if got, err := FindSocket(""); err != nil || got != a.Path() {
		t.Errorf("one live socket beside a stale one: %q, %v; want %s", got, err, a.Path())
	}
	b, err := Listen(filepath.Join(dir, "b.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := FindSocket(""); !errors.Is(err, ErrManySockets) {
		t.Errorf("two live sockets: %v, want ErrManySockets", err)
	}
}
