package watch

import (
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/store"
)

// SetRecovery attaches the recovery layer, which needs the watcher's
// monitor and so is built after New. Call it before Run.
func (w *Watcher) SetRecovery(r Recovery) { w.cfg.Recovery = r }

// Report logs, counts and passes on a state change made outside the beats,
// by the recovery layer, exactly as the watcher does its own.
func (w *Watcher) Report(tr monitor.Transition) { w.changed(tr) }

// Store returns the watcher's Redis, or nil in single-node mode; several
// replicas coordinate recovery through it.
func (w *Watcher) Store() *store.Watcher { return w.redis }
