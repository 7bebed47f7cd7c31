// Package wire defines what crosses a process boundary about an agent: the
// beat that beatwrap publishes for it, the agent hash that beats leave in
// Redis, the rules for a valid agent id, the shard a beat goes to, and the
// ranges every number an agent reports is held to. Status.Live is the one
// rule for what an orchestrator's health check restarts.
//
// Every other package imports these types; none defines its own copy. The
// lines of the progress socket are package sockline, under this one, on the
// same ranges and statuses. The beat is a superset of the reference design's
// HeartbeatMessage, so a consumer written against that design reads ours
// unchanged.
//
// ParseBeat decodes with a decoder written for the beat, on the JSON scanner
// of package jsonscan, since encoding/json was most of a watcher's ingest;
// whatever that decoder is not sure of goes to encoding/json, so the two
// accept the same beats and give the same errors. The numbers an agent
// reports are held to the same ranges in a beat (ParseBeat), an agent hash
// read back from Redis (ParseHash) and a line on the progress socket
// (sockline.ParseReport), and what is refused is refused naming the field.
package wire
