// Package monitor is beatwatch's detection state machine: it turns the beats
// an agent sends, and the silence between them, into the agent's state
// (healthy, stalled, missing, failed, recovering, stopped) and reports each
// change once as a Transition.
//
// It is pure logic. It does no I/O, starts no goroutine and reads no clock:
// the caller passes the watcher's receive time to Observe and drives Sweep
// from its own ticker. Every change, whether a beat, the sweep or a report of
// the recovery layer (MarkRecovering, AddRecoveryStep, RecoveryDone,
// SetState) caused it, is handed to the Subscribers fixed in its Config, in
// their order, once the monitor's lock is released. Deadlines are always counted on the watcher's clock,
// never on the timestamp an agent writes into its beat.
//
// How an agent is judged:
//
//   - Interval and missed beats come from the beat (intervalMs, missedBeats).
//     A beat without intervalMs (a client of the reference design) is judged
//     by Config.DefaultInterval until three arrival gaps have been seen, and
//     then by the median of the last (up to five) gaps, never less than
//     MinInterval.
//     Gaps that span a declared death, a watcher outage or an agent restart
//     are not counted.
//   - missing: no beat for interval + slack, where slack is half an interval
//     but at most 2s (see Slack). Missing is a warning only.
//   - failed: no beat for missedBeats × interval (the reference design's 3×),
//     or at once on a final beat with status exited.
//   - stopped: a final beat with status stopped. A stopped agent is never
//     failed; a later beat means it was started again (healthy, not
//     recovered).
//   - recovering: set by the recovery layer (MarkRecovering) and left when
//     the agent beats again or when the layer calls RecoveryDone.
//   - Agents failed or stopped for longer than Config.Forget (24h unless set)
//     are dropped by Sweep, so memory stays bounded for a churning fleet;
//     so is an agent silent for that long whatever interval it claims (an
//     hour's interval with a thousand missed beats would otherwise keep it
//     for six weeks). Subscribers are told, by a transition to Forgotten.
//   - Config.MaxAgents caps the agents known: a new id past it is refused
//     and counted (Refused), and the known agents keep updating.
//   - A restarted watcher rebuilds its view with Restore: every agent gets one
//     interval before it can be missing and a full timeout before it can be
//     failed. While the watcher is blind (SetBlind: its own Redis connection
//     is down) nobody is judged, and when sight returns every agent gets the
//     same grace again. Blind is not dead.
//
// Sequence numbers: a beat whose sequence is not above the last one seen, from
// the same incarnation of the sender, is a duplicate or arrived out of order.
// It is counted (Ignored, and per agent) and changes nothing. A lower
// sequence starts a new incarnation instead when the pid or host differs, when
// the agent's own timestamp is newer than the last beat's, when the sequence
// restarted at 1 (and the beat carries no timestamp), or when it is more than
// 64 below the last one. So a restarted beatwrap is never ignored for long.
//
// Cost: deadlines live in an indexed 4-ary min-heap. Observe is O(1) for an
// agent that keeps beating: it leaves the agent's heap entry early rather
// than move it on every beat. Sweep pops only entries that are due; one made
// stale by later beats is moved once, when it comes up. So a sweep costs in
// proportion to the agents due, not to the fleet size.
//
// Memory: about 420 bytes of live heap per agent (BenchmarkMemory). Agents
// live in a slab of chunks, not one allocation each; what the view needs is
// kept in narrow fields (metrics as 32-bit numbers, the status and the
// reason for the state as a byte each, a 64-hex container id as 32 bytes),
// agent type and host strings are shared, and what few agents have (a stall
// reason, a recovery history, a reason given from outside) is kept out of
// line. Pages (Page) walk the slab's id order and a byte of state per agent,
// so no request sorts or copies the fleet.
//
// A Monitor is safe for concurrent use.
package monitor
