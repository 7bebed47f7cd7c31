package redisfleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/store/publish"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

func testBeat(id string, seq uint64, status wire.Status) wire.Beat {
	p := 40.0
	return wire.Beat{
		AgentID: id, AgentType: "summariser", Timestamp: time.Now().UnixMilli(), Sequence: seq,
		Status: status, Metrics: wire.Metrics{CPUPercent: 12.5, MemoryMB: 310},
		CurrentTask: "summarise ticket 4312", TaskProgress: &p,
		IntervalMs: 1000, MissedBeats: 3, Host: "node-7", PID: 4711,
	}
}

// newPublisher is what beatwrap publishes beats with, on its own client to
// the Redis at url.
func newPublisher(url string, o store.Options, shards int) (*publish.Redis, error) {
	db, err := store.Open(url, o)
	if err != nil {
		return nil, err
	}
	return publish.NewRedis(db, publish.RedisConfig{Shards: shards}), nil
}

func rawClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// subscription runs Watcher.Subscribe in the background and records what it
// delivers and reports.
type subscription struct {
	t        *testing.T
	msgs     chan string
	states   chan stateEvent
	cancel   context.CancelFunc
	done     chan error
	handling sync.Mutex // held by the test to make the handler slow
}

type stateEvent struct {
	up  bool
	err error
}

func subscribeTest(t *testing.T, w *Watcher) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{t: t, msgs: make(chan string, 1<<16), states: make(chan stateEvent, 64), cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- w.Subscribe(ctx, func(p []byte) {
			s.handling.Lock()
			s.handling.Unlock()
			select {
			case s.msgs <- string(p):
			default:
			}
		}, func(up bool, err error) { s.states <- stateEvent{up, err} })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("Subscribe returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Subscribe did not return within 5s of cancel")
		}
	})
	return s
}

func (s *subscription) state(within time.Duration) stateEvent {
	s.t.Helper()
	select {
	case e := <-s.states:
		return e
	case <-time.After(within):
		s.t.Fatalf("no state change within %v", within)
		return stateEvent{}
	}
}

// message waits for the message want, skipping others.
func (s *subscription) message(want string, within time.Duration) {
	s.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case got := <-s.msgs:
			if got == want {
				return
			}
		case <-deadline:
			s.t.Fatalf("message %q not delivered within %v", want, within)
		}
	}
}

func TestSubscribeReportsAFirstFailure(t *testing.T) {
	w, err := NewWatcher(fmt.Sprintf("redis://127.0.0.1:%d", testutil.FreePort(t)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s := subscribeTest(t, w)
	got := s.state(5 * time.Second)
	if got.up || got.err == nil || !strings.Contains(got.err.Error(), "subscribe to heartbeats") {
		t.Errorf("first state = %+v, want down with the subscribe error", got)
	}
	select {
	case e := <-s.states:
		t.Errorf("a second report %+v while Redis stays unreachable, want one", e)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestSubscribeSurvivesARedisRestart(t *testing.T) {
	srv := testutil.StartRedis(t)
	w, err := NewWatcher(srv.URL(), store.Options{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s := subscribeTest(t, w)
	if got := s.state(5 * time.Second); !got.up {
		t.Fatalf("first state = %+v, want up", got)
	}
	raw := rawClient(t, srv.URL())
	publishUntil(t, s, raw, "ns:heartbeats", "before")

	srv.Stop()
	if got := s.state(5 * time.Second); got.up || got.err == nil {
		t.Fatalf("state after Redis stopped = %+v, want down with an error", got)
	}
	srv.Start()
	if got := s.state(10 * time.Second); !got.up {
		t.Fatalf("state after Redis is back = %+v, want up", got)
	}
	publishUntil(t, s, rawClient(t, srv.URL()), "ns:heartbeats", "after")
}

// publishUntil publishes msg until it is delivered: a message published
// just as the subscription comes up may be missed, which is what blind
// means.
func publishUntil(t *testing.T, s *subscription, c *redis.Client, channel, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = c.Publish(context.Background(), channel, msg).Err()
		select {
		case got := <-s.msgs:
			if got == msg {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %q not delivered within 5s", msg)
		}
	}
}

// TestSubscribeResubscribesWhenCutOff makes the subscriber fall behind until
// Redis cuts it off at its pubsub output buffer limit: Subscribe reports it
// down, naming the limit, and resubscribes.
func TestSubscribeResubscribesWhenCutOff(t *testing.T) {
	srv := testutil.StartRedis(t)
	raw := rawClient(t, srv.URL())
	ctx := context.Background()
	if err := raw.ConfigSet(ctx, "client-output-buffer-limit", "pubsub 256kb 0 0").Err(); err != nil {
		t.Fatalf("set client-output-buffer-limit: %v", err)
	}
	w, err := NewWatcher(srv.URL(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s := subscribeTest(t, w)
	if got := s.state(5 * time.Second); !got.up {
		t.Fatalf("first state = %+v, want up", got)
	}
	publishUntil(t, s, raw, "heartbeats", "first")

	// The handler stalls while 64 MB are published: more than the socket
	// buffers take, so Redis's output buffer passes the limit.
	s.handling.Lock()
	big := strings.Repeat("x", 64<<10)
	p := raw.Pipeline()
	for range 1024 {
		p.Publish(ctx, "heartbeats", big)
	}
	if _, err := p.Exec(ctx); err != nil {
		s.handling.Unlock()
		t.Fatalf("publish: %v", err)
	}
	s.handling.Unlock()

	down := s.state(10 * time.Second)
	if down.up || down.err == nil || !strings.Contains(down.err.Error(), "client-output-buffer-limit") {
		t.Fatalf("state after the flood = up %v, error %v; want down naming client-output-buffer-limit", down.up, down.err)
	}
	if got := s.state(10 * time.Second); !got.up {
		t.Fatalf("state after the cut-off = %+v, want up again", got)
	}
	publishUntil(t, s, raw, "heartbeats", "after")
}

func TestAgentsReadsEveryHashOfItsNamespace(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	ctx := context.Background()
	pub, err := newPublisher(url, store.Options{Namespace: ns}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	const n = 2500 // more than one SCAN batch
	p := rawClient(t, url).Pipeline()
	for i := range n {
		p.HSet(ctx, fmt.Sprintf("%s:agent:a-%04d", ns, i), "type", "t", "status", "healthy")
	}
	p.HSet(ctx, "other-"+ns+":agent:x", "type", "t") // another namespace
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Beat(ctx, wire.Beat{AgentID: "beating", Status: wire.StatusHealthy, IntervalMs: 1000}); err != nil {
		t.Fatal(err)
	}

	w, err := NewWatcher(url, store.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got, err := w.Agents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n+1 {
		t.Fatalf("read %d agents, want %d", len(got), n+1)
	}
	seen := map[string]bool{}
	for _, h := range got {
		seen[h.ID] = true
	}
	if !seen["a-0000"] || !seen[fmt.Sprintf("a-%04d", n-1)] || !seen["beating"] || seen["x"] {
		t.Errorf("ids read are not those of the namespace")
	}
}

// TestAgentsSkipsWhatIsNoAgentHash: a stray key under agent:* (a string, a
// list, a name that is no agent id) does not stop the rebuild: it is
// skipped and counted, and a checkpoint (a string of ours) is skipped
// without being counted. A hash whose fields break the beat's rules comes
// back with those fields zero and named in Err.
func TestAgentsSkipsWhatIsNoAgentHash(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	ctx := context.Background()
	c := rawClient(t, url)
	p := c.Pipeline()
	p.HSet(ctx, ns+":agent:good", "type", "t", "status", "healthy", "pid", "42")
	p.HSet(ctx, ns+":agent:pwned", "type", "t", "status", "pwned", "pid", "99999999999", "restarts", "9223372036854775807")
	p.Set(ctx, ns+":agent:poison", "not a hash", 0)
	p.RPush(ctx, ns+":agent:listed", "x")
	p.HSet(ctx, ns+":agent:bad id!", "type", "t")
	p.Set(ctx, ns+":agent:good:checkpoint", `{"step":3}`, 0)
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(url, store.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got, err := w.Agents(ctx)
	if err != nil {
		t.Fatalf("Agents = %v: a stray key stopped the rebuild", err)
	}
	byID := map[string]AgentHash{}
	for _, h := range got {
		byID[h.ID] = h
	}
	if len(got) != 2 || byID["good"].Hash.PID != 42 || byID["good"].Err != nil {
		t.Fatalf("Agents = %+v, want good and pwned", got)
	}
	pw := byID["pwned"]
	if pw.Err == nil || pw.Hash.Status != "" || pw.Hash.PID != 0 || pw.Hash.Restarts != 0 {
		t.Errorf("pwned = %+v, want status, pid and restarts refused", pw)
	}
	for _, field := range []string{"status", "pid", "restarts"} {
		if pw.Err != nil && !strings.Contains(pw.Err.Error(), field) {
			t.Errorf("error %q does not name %s", pw.Err, field)
		}
	}
	if n, last := w.Skipped(); n != 3 || !strings.Contains(last, ns+":agent:") {
		t.Errorf("Skipped = %d, %q; want 3 (poison, listed, bad id), not the checkpoint", n, last)
	}
}

func TestReplicaRegistry(t *testing.T) {
	url := testutil.RedisURL(t)
	w, err := NewWatcher(url, store.Options{Namespace: testutil.Namespace(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	if _, err := w.Heartbeat(ctx, "short", "http://127.0.0.1:1", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	live, err := w.Heartbeat(ctx, "long", "http://127.0.0.1:2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []ReplicaEntry{{"long", "http://127.0.0.1:2"}, {"short", "http://127.0.0.1:1"}}
	if fmt.Sprint(live) != fmt.Sprint(want) && fmt.Sprint(live) != fmt.Sprint([]ReplicaEntry{want[1], want[0]}) {
		t.Fatalf("live = %v, want %v", live, want)
	}
	// "short" is not renewed: it is gone once its registration runs out.
	testutil.Eventually(t, 5*time.Second, "expired replica dropped", func() bool {
		live, err := w.Heartbeat(ctx, "long", "http://127.0.0.1:2", time.Minute)
		return err == nil && len(live) == 1 && live[0].ID == "long"
	})
	if err := w.Deregister(ctx, "long"); err != nil {
		t.Fatal(err)
	}
	live, err = w.Heartbeat(ctx, "other", "x", time.Minute)
	if err != nil || len(live) != 1 || live[0].ID != "other" {
		t.Fatalf("after Deregister: live = %v, %v", live, err)
	}
}

// What Register, Beat and Final write, Agents reads back: the hash schema is
// written and read in one place, and this keeps the two sides together.
func TestAgentsReadsBackWhatBeatsWrite(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	ctx := context.Background()
	pub, err := newPublisher(url, store.Options{Namespace: ns}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	b := testBeat("round-1", 1, wire.StatusStarting)
	b.ContainerID, b.Restarts = strings.Repeat("ab", 32), 2
	if err := pub.Register(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.Sequence, b.Status = 2, wire.StatusBusy
	if err := pub.Beat(ctx, b); err != nil {
		t.Fatal(err)
	}
	code := 3
	b.Sequence, b.Status, b.ExitCode = 3, wire.StatusExited, &code
	stopped := time.UnixMilli(b.Timestamp + 5)
	if err := pub.Final(ctx, b, stopped); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(url, store.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got, err := w.Agents(ctx)
	if err != nil || len(got) != 1 {
		t.Fatalf("Agents = %+v, %v; want one", got, err)
	}
	h := got[0]
	if h.Err != nil {
		t.Errorf("hash read with errors: %v", h.Err)
	}
	want := wire.Hash{
		Type: b.AgentType, Host: b.Host, PID: b.PID, Status: wire.StatusExited, LastHeartbeat: b.Timestamp,
		RegisteredAt: b.Timestamp, StoppedAt: stopped.UnixMilli(), Sequence: 3, CPUPercent: 12.5, MemoryMB: 310,
		IntervalMs: 1000, MissedBeats: 3, ContainerID: b.ContainerID, Restarts: 2, CurrentTask: b.CurrentTask,
	}
	if h.ID != "round-1" || h.Hash.TaskProgress == nil || *h.Hash.TaskProgress != 40 || h.Hash.ExitCode == nil || *h.Hash.ExitCode != 3 {
		t.Errorf("read %s, progress %v, exit code %v", h.ID, h.Hash.TaskProgress, h.Hash.ExitCode)
	}
	h.Hash.TaskProgress, h.Hash.ExitCode = nil, nil
	if h.Hash != want {
		t.Errorf("read back\n%+v\nwant\n%+v", h.Hash, want)
	}
}

// TestLeaseErrorSaysWhetherRedisAnswered: a lease that cannot be asked for
// because Redis does not answer matches ErrUnreachable; one Redis refuses
// (an ACL user without +evalsha) does not: it is no outage, and the
// watcher says so differently.
func TestLeaseErrorSaysWhetherRedisAnswered(t *testing.T) {
	ctx := context.Background()
	down, err := NewWatcher(fmt.Sprintf("redis://127.0.0.1:%d", testutil.FreePort(t)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	if _, err := down.Lease(ctx, "r1", 5*time.Second); !errors.Is(err, ErrUnreachable) {
		t.Errorf("lease with no Redis listening: %v, want ErrUnreachable", err)
	}

	srv := testutil.StartRedis(t)
	if err := rawClient(t, srv.URL()).Do(ctx, "ACL", "SETUSER", "noscript", "on", ">pw", "~*", "+@all", "-evalsha", "-eval").Err(); err != nil {
		t.Fatal(err)
	}
	refused, err := NewWatcher(fmt.Sprintf("redis://noscript:pw@%s/0", srv.Addr()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	_, err = refused.Lease(ctx, "r1", 5*time.Second)
	if err == nil || errors.Is(err, ErrUnreachable) {
		t.Errorf("lease refused by the ACL: %v, want Redis's refusal, not ErrUnreachable", err)
	}
}
