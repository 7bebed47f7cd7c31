package checkpoint

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/store"
)

// Writer stores one agent's checkpoints in the background, so that
// the agent never waits on the network for one.
//
// A checkpoint is written at once when the last write was at least the gap
// ago, else when the gap has passed: an agent that checkpoints in a tight
// loop costs one write per gap, and the newest value is the one written.
// While the store is down the newest checkpoint waits in memory and is
// written when the store is back. Flush writes what is left when beatwrap
// stops.
type Writer struct {
	store   Store
	id      string
	gap     time.Duration
	timeout time.Duration
	log     *slog.Logger

	mu         sync.Mutex
	epoch      int64 // 0 until BeginEpoch succeeded
	stored     store.Checkpoint
	begun      bool
	pending    *store.Checkpoint
	saved      bool // the newest checkpoint offered is stored
	superseded *SupersededError
	lastWrite  time.Time
	onBegin    func(store.Checkpoint) // told of the stored checkpoint a late begin found
	wake       chan struct{}
}

// NewWriter writes the checkpoints of agent id to s, at most
// once per gap. timeout bounds each call to the store.
func NewWriter(s Store, id string, gap, timeout time.Duration, log *slog.Logger) *Writer {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Writer{store: s, id: id, gap: gap, timeout: timeout, log: log, wake: make(chan struct{}, 1)}
}

// Begin takes this incarnation's epoch and returns the stored checkpoint,
// waiting at most timeout. When the store cannot be reached it returns the
// error, and Run takes the epoch once it can; found is then told of the
// checkpoint that was stored, unless one was offered since.
func (w *Writer) Begin(ctx context.Context, timeout time.Duration, found func(store.Checkpoint)) (store.Checkpoint, error) {
	w.mu.Lock()
	w.onBegin = found
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return w.begin(ctx)
}

func (w *Writer) begin(ctx context.Context) (store.Checkpoint, error) {
	epoch, cp, err := w.store.BeginEpoch(ctx, w.id)
	if err != nil {
		return store.Checkpoint{}, err
	}
	w.mu.Lock()
	w.epoch, w.stored, w.begun = epoch, cp, true
	w.mu.Unlock()
	w.log.Info("checkpoint epoch taken", "epoch", epoch, "checkpoint_bytes", len(cp.Value), "destination", w.store.String())
	return cp, nil
}

// Epoch is this incarnation's epoch, 0 until it is taken.
func (w *Writer) Epoch() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.epoch
}

// Offer hands over the agent's newest checkpoint; it never blocks.
func (w *Writer) Offer(cp store.Checkpoint) {
	w.mu.Lock()
	w.pending = &cp
	w.saved = false
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Saved reports whether the newest checkpoint offered is stored.
func (w *Writer) Saved() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.saved
}

// Superseded returns the refusal when a newer incarnation has taken over,
// else nil.
func (w *Writer) Superseded() *SupersededError {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.superseded
}

// Run writes offered checkpoints until ctx is done. It takes the epoch
// first if Begin could not.
func (w *Writer) Run(ctx context.Context) error {
	var down time.Time // zero while the store is up
	const minWait = 250 * time.Millisecond
	wait := minWait
	retry := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, w.timeout)
		return true
	}
	for {
		w.mu.Lock()
		begun, pending, superseded := w.begun, w.pending != nil, w.superseded != nil
		w.mu.Unlock()
		if !begun && !superseded {
			if err := w.lateBegin(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if down.IsZero() {
					down = time.Now()
					w.log.Warn("cannot reach the checkpoint store; checkpoints are kept in memory until it is back", "destination", w.store.String(), "error", err)
				}
				if !retry() {
					return nil
				}
				continue
			}
		}
		if !pending || superseded {
			select {
			case <-ctx.Done():
				return nil
			case <-w.wake:
			}
			continue
		}
		// At most one write per gap: wait out the rest of it, taking the
		// newer checkpoints that arrive meanwhile.
		w.mu.Lock()
		next := w.lastWrite.Add(w.gap)
		w.mu.Unlock()
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
		}
		err := w.writePending(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			if !down.IsZero() {
				w.log.Info("checkpoints stored again", "destination", w.store.String(), "outage", time.Since(down).Round(time.Millisecond).String())
				down = time.Time{}
			}
			wait = minWait
		case errors.Is(err, ErrSuperseded):
			// Logged by writePending; nothing more will be stored.
		default:
			if down.IsZero() {
				down = time.Now()
				w.log.Warn("cannot store the checkpoint; it is kept in memory and stored when the store is back", "destination", w.store.String(), "error", err)
			}
			if !retry() {
				return nil
			}
		}
	}
}

func (w *Writer) lateBegin(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	cp, err := w.begin(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	found, offered := w.onBegin, w.pending != nil || w.saved
	w.mu.Unlock()
	if found != nil && !offered {
		found(cp)
	}
	return nil
}

// writePending writes the newest checkpoint offered; on failure it is put
// back unless a newer one came meanwhile.
func (w *Writer) writePending(ctx context.Context) error {
	w.mu.Lock()
	cp := w.pending
	w.pending = nil
	epoch := w.epoch
	w.lastWrite = time.Now()
	w.mu.Unlock()
	if cp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	err := w.store.SaveCheckpoint(ctx, w.id, epoch, *cp)
	w.mu.Lock()
	defer w.mu.Unlock()
	var sup *SupersededError
	switch {
	case err == nil:
		if w.pending == nil {
			w.saved = true
		}
	case errors.As(err, &sup):
		if w.superseded == nil {
			w.superseded = sup
			w.log.Warn("superseded: a newer beatwrap with the same agent id has started; this one's checkpoints are refused from now on",
				"epoch", sup.Epoch, "newer_epoch", sup.Newer)
		}
	default:
		if w.pending == nil {
			w.pending = cp
		}
	}
	return err
}

// Flush writes the checkpoint still pending, waiting at most timeout. It is
// called once, after Run has stopped, when beatwrap stops.
func (w *Writer) Flush(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	w.mu.Lock()
	begun, pending, sup := w.begun, w.pending != nil, w.superseded
	w.mu.Unlock()
	if !pending || sup != nil {
		return nil
	}
	if !begun {
		if _, err := w.begin(ctx); err != nil {
			return err
		}
	}
	return w.writePending(ctx)
}
