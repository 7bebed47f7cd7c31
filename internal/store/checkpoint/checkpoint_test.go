package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// countingStore counts the writes that reach a real store.
type countingStore struct {
	Store
	saves atomic.Int64
}

func (c *countingStore) SaveCheckpoint(ctx context.Context, id string, epoch int64, cp store.Checkpoint) error {
	c.saves.Add(1)
	return c.Store.SaveCheckpoint(ctx, id, epoch, cp)
}

func newCheckpointRedis(t *testing.T, url string) (*Redis, string) {
	t.Helper()
	ns := testutil.Namespace(t)
	db, err := store.Open(url, store.Options{Namespace: ns, DialTimeout: 200 * time.Millisecond, IOTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return NewRedis(db, time.Hour), ns
}

func runWriter(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Writer.Run did not return after cancel")
		}
	})
}

func stored(t *testing.T, r *Redis, id string) store.Checkpoint {
	t.Helper()
	_, cp, err := r.BeginEpoch(context.Background(), id) // a new epoch: the caller is done writing
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestCheckpointEpochFencing(t *testing.T) {
	r, _ := newCheckpointRedis(t, testutil.RedisURL(t))
	ctx := context.Background()
	old, cp, err := r.BeginEpoch(ctx, "a1")
	if err != nil || old != 1 || !cp.None() {
		t.Fatalf("first BeginEpoch = %d, %+v, %v; want epoch 1 and no checkpoint", old, cp, err)
	}
	at := time.UnixMilli(1764000000000)
	if err := r.SaveCheckpoint(ctx, "a1", old, store.Checkpoint{Value: []byte(`{"n":1}`), At: at}); err != nil {
		t.Fatal(err)
	}
	newer, cp, err := r.BeginEpoch(ctx, "a1")
	if err != nil || newer != 2 || string(cp.Value) != `{"n":1}` || !cp.At.Equal(at) {
		t.Fatalf("second BeginEpoch = %d, %s at %v, %v", newer, cp.Value, cp.At, err)
	}
	err = r.SaveCheckpoint(ctx, "a1", old, store.Checkpoint{Value: []byte(`{"n":99}`), At: at})
	var sup *SupersededError
	if !errors.As(err, &sup) || !errors.Is(err, ErrSuperseded) || sup.Newer != 2 || sup.Epoch != 1 {
		t.Fatalf("write from the older epoch: %v, want superseded by 2", err)
	}
	if err := r.SaveCheckpoint(ctx, "a1", newer, store.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if e, cp, _ := r.BeginEpoch(ctx, "a1"); e != 3 || !cp.None() {
		t.Errorf("after clearing: epoch %d, %s; want 3 and none (the epoch outlives the checkpoint)", e, cp.Value)
	}
}

// Many checkpoints in a burst cost one write per gap, the newest written; a
// checkpoint offered while Redis is down is kept and written when it is back,
// the newest winning; the outage is logged once.
func TestWriterCoalescesAndSurvivesOutage(t *testing.T) {
	srv := testutil.StartRedis(t)
	r, _ := newCheckpointRedis(t, srv.URL())
	cs := &countingStore{Store: r}
	var logs testutil.Buffer
	w := NewWriter(cs, "a1", 200*time.Millisecond, time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	if _, err := w.Begin(context.Background(), time.Second, nil); err != nil {
		t.Fatal(err)
	}
	runWriter(t, w)

	for i := 1; i <= 100; i++ {
		w.Offer(store.Checkpoint{Value: []byte(fmt.Sprintf(`{"n":%d}`, i)), At: time.Now()})
		time.Sleep(2 * time.Millisecond)
	}
	testutil.Eventually(t, 5*time.Second, "the burst written", w.Saved)
	// 100 offers in about 0.2-0.4s with a 200ms gap: 2 or 3 writes, say at most 4.
	if n := cs.saves.Load(); n > 4 {
		t.Errorf("%d writes for a burst of 100 checkpoints, want at most 4", n)
	}

	srv.Stop()
	for i := 101; i <= 110; i++ {
		w.Offer(store.Checkpoint{Value: []byte(fmt.Sprintf(`{"n":%d}`, i)), At: time.Now()})
	}
	time.Sleep(500 * time.Millisecond) // several failed attempts
	if w.Saved() {
		t.Fatal("saved with Redis stopped")
	}
	srv.Start()
	testutil.Eventually(t, 10*time.Second, "the checkpoint written after the outage", w.Saved)
	if got := stored(t, r, "a1"); string(got.Value) != `{"n":110}` {
		t.Errorf("stored after the outage: %s, want the newest, {\"n\":110}", got.Value)
	}
	if n := strings.Count(logs.String(), "cannot store the checkpoint"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "checkpoints stored again") {
		t.Errorf("end of the outage not logged:\n%s", logs.String())
	}
}

// Redis down at start: Begin fails at once, Run takes the epoch when Redis
// is back and hands the stored checkpoint over, and a writer superseded
// meanwhile stops writing and says so once.
func TestWriterLateBeginAndSuperseded(t *testing.T) {
	srv := testutil.StartRedis(t)
	r, _ := newCheckpointRedis(t, srv.URL())
	ctx := context.Background()
	srv.Stop()
	var logs testutil.Buffer
	w := NewWriter(r, "a1", 10*time.Millisecond, time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	found := make(chan store.Checkpoint, 1)
	if _, err := w.Begin(ctx, 300*time.Millisecond, func(cp store.Checkpoint) { found <- cp }); err == nil {
		t.Fatal("Begin succeeded with Redis stopped")
	}
	// Redis is back, without its data (no persistence here): an earlier
	// incarnation's checkpoint is put back before the writer tries again.
	srv.Start()
	e, _, err := r.BeginEpoch(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SaveCheckpoint(ctx, "a1", e, store.Checkpoint{Value: json.RawMessage(`"before"`), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	runWriter(t, w)
	select {
	case cp := <-found:
		if string(cp.Value) != `"before"` {
			t.Errorf("late begin found %s, want \"before\"", cp.Value)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stored checkpoint was not handed over after Redis came back")
	}
	if w.Epoch() != 2 {
		t.Errorf("epoch %d, want 2", w.Epoch())
	}
	// A newer incarnation starts; ours writes and is refused.
	if _, _, err := r.BeginEpoch(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	w.Offer(store.Checkpoint{Value: json.RawMessage(`"stale"`), At: time.Now()})
	testutil.Eventually(t, 5*time.Second, "the writer to learn it is superseded", func() bool { return w.Superseded() != nil })
	w.Offer(store.Checkpoint{Value: json.RawMessage(`"stale again"`), At: time.Now()})
	if err := w.Flush(time.Second); err != nil {
		t.Errorf("Flush of a superseded writer: %v, want nothing written and no error", err)
	}
	if got := stored(t, r, "a1"); string(got.Value) != `"before"` {
		t.Errorf("stored: %s, want the checkpoint from before the stale writes", got.Value)
	}
	if n := strings.Count(logs.String(), "superseded"); n != 1 {
		t.Errorf("superseded logged %d times, want once:\n%s", n, logs.String())
	}
}
