// Package claim makes sure that an agent id runs once per host and user: a
// beatwrap claims its id before it starts the agent, holds the claim for its
// whole life, and writes in it who runs the agent, so that the next beatwrap
// with the same id can tell whether an earlier incarnation still runs.
//
// The claim is a file beside the default progress socket,
// $XDG_RUNTIME_DIR/beatwrap/<id>.lock, else /tmp/beatwrap-<uid>/<id>.lock,
// whatever --socket says: the id is what must be unique, not the socket. The
// holder keeps an exclusive flock(2) on it, which the kernel drops when the
// holder dies by any means, and writes a record in it: its own pid and start
// time, its agent's (the leader of the agent's process group), its grace
// period and its --orphan policy. Pids and start times together tell a
// process from a later one that got the same pid.
//
// Taking a claim:
//   - the lock is free and the record names no live agent: the claim is
//     taken;
//   - the lock is held: a beatwrap runs the agent. Refused, or with Replace
//     that beatwrap gets SIGTERM, runs its stop sequence (its agent gets the
//     grace period, the final beat goes out) and releases the lock; if it
//     has not after its grace and some seconds more, it gets SIGKILL;
//   - the lock is free but the record's agent, or a process of its group,
//     still runs: its beatwrap died and left it (--orphan keep). Refused, or
//     with Replace the group gets SIGTERM, the recorded grace, then SIGKILL.
//     A group whose beatwrap ran with --orphan kill is given a moment to be
//     ended by that beatwrap's watchdog first.
//
// The file is removed on release; a holder checks after locking that the
// file it locked is still the one at the path, so two claims never live on
// two files.
package claim
