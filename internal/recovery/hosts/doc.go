// Package hosts keeps track of the Docker Engines one beatwatch replica
// reaches, and says who acts on a failed agent: this replica, another, or
// nobody because the agent's host is down.
//
// Each engine has a lease in Redis, keyed by the engine's own ID (two
// engines on one machine report the same host name): the replica that
// leads an engine recovers the failures of the agents whose containers it
// holds, and records where they are for the replicas that do not reach it.
// Locate looks in the engines' listings first, then in those records, and
// only then asks the engines themselves. An engine that no live replica
// reaches is one incident, opened once across replicas; the replica that
// opened it is told so (Event.Opened) and, once a replica leads the engine
// again, that it is over (Event.Closed).
//
// It sends no alert and acts on no container: package recovery does both
// with what Locate and Run's events say. Alert phrases a host incident's
// alert and names it after the engine, so that every replica keys one
// incident alike. It speaks to the engines and to the other replicas only
// through Engine and Coordinator.
package hosts
