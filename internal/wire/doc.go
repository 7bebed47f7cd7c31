// Package wire defines what crosses a process boundary: the beat that beatwrap
// publishes for an agent, the lines an agent writes on the progress socket
// (reports, and query lines that ask beatwrap something, such as Health) and
// the replies it gets back, and the rules for a valid agent id. Status.Live
// is the one rule for what an orchestrator's health check restarts.
//
// Every other package imports these types; none defines its own copy. The beat
// is a superset of the reference design's HeartbeatMessage, so a consumer
// written against that design reads ours unchanged.
//
// ParseBeat decodes with a decoder written for the beat, on the JSON scanner
// of package jsonscan, since encoding/json was most of a watcher's ingest;
// whatever that decoder is not sure of goes to encoding/json, so the two
// accept the same beats and give the same errors. The numbers an agent reports are held to the same ranges in a beat
// (ParseBeat), an agent hash read back from Redis (ParseHash) and a line on
// the progress socket (ParseReport), and what is refused is refused naming
// the field.
package wire
