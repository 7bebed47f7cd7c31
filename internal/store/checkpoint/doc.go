// Package checkpoint keeps an agent's checkpoint for its next incarnation,
// fenced by epoch: each beatwrap start takes a new epoch for its agent id,
// and a write from an older epoch is refused (ErrSuperseded), so an
// incarnation that was only cut off cannot write over its successor's.
//
// Two backends share one interface, Store: in Redis one key,
// agent:<id>:checkpoint, holds the checkpoint and the newest epoch taken
// (store.CheckpointRecord), and Lua scripts take an epoch and refuse a
// write from an older one atomically; a single-node beatwatch does the same
// over HTTP. Writer stores checkpoints in the background, at most one write
// per gap, the newest kept in memory while the store is down.
package checkpoint
