package wrap

import (
	"time"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// checkpointReadTimeout bounds the read of the last checkpoint before the
// first start: long enough for a Redis or watcher that answers at all, short
// enough that one that does not delays the agent by moments only.
const checkpointReadTimeout = 3 * time.Second

// checkpointGap is the least time between two checkpoint writes: a tenth of
// the beat interval, at most a second. An agent that checkpoints after every
// step costs the store at most that many writes, and a checkpoint waits at
// most that long to be written.
func checkpointGap(interval time.Duration) time.Duration {
	return min(interval/10, time.Second)
}

// report takes one valid line from the progress socket.
func (w *wrapper) report(r sockline.Report) {
	w.tracker.Apply(r)
	if r.Checkpoint == nil {
		return
	}
	cp := store.Checkpoint{Value: r.Checkpoint, At: w.clock()}
	if r.ClearsCheckpoint() {
		cp = store.Checkpoint{}
	}
	w.mu.Lock()
	w.ckpt = cp
	w.ckptSeen = true
	w.mu.Unlock()
	if w.ckptWriter != nil {
		w.ckptWriter.Offer(cp)
	}
}

// adoptCheckpoint keeps the checkpoint an earlier incarnation stored, unless
// the agent has written one since: the next start of the child gets it.
func (w *wrapper) adoptCheckpoint(cp store.Checkpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ckptSeen {
		w.ckpt = cp
	}
	if !cp.None() {
		w.log.Info("checkpoint found: the agent resumes from it", "checkpoint_bytes", len(cp.Value),
			"age", w.clock().Sub(cp.At).Round(time.Second).String())
	}
}

// checkpoint is the last checkpoint: the agent's own, else the one stored.
func (w *wrapper) checkpoint() store.Checkpoint {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ckpt
}

// checkpointAnswer answers the checkpoint query.
func (w *wrapper) checkpointAnswer() sockline.CheckpointAnswer {
	cp := w.checkpoint()
	a := sockline.CheckpointAnswer{Checkpoint: sockline.NullCheckpoint}
	if !cp.None() {
		a.Checkpoint, a.At = cp.Value, cp.At.UnixMilli()
	}
	if w.ckptWriter != nil {
		a.Saved = w.ckptWriter.Saved()
		if !w.checkpointSeen() {
			// Nothing written by this incarnation: what it has is what
			// the store had, once it could be read.
			a.Saved = w.ckptWriter.Epoch() != 0
		}
		a.Superseded = w.ckptWriter.Superseded() != nil
	}
	return a
}

func (w *wrapper) checkpointSeen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ckptSeen
}
