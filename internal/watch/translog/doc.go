// Package translog writes a watcher's state changes to its log so that the
// log scales with the fleet: one line per change while changes are few; past
// a rate, one summary line per kind of change at each flush ("4,213 agents
// healthy → missing, e.g. a, b, c"), and the per-agent lines at debug.
package translog
