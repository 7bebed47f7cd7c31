// Package wire defines what crosses a process boundary: the beat that beatwrap
// publishes for an agent, the lines an agent writes on the progress socket and
// the replies it gets back, and the rules for a valid agent id.
//
// Every other package imports these types; none defines its own copy. The beat
// is a superset of the reference design's HeartbeatMessage, so a consumer
// written against that design reads ours unchanged.
package wire
