// Package progress tells a stuck agent from a working one. It owns beatwrap's
// progress socket, where an agent writes one JSON report per line and gets an
// answer per line, and query lines are answered by name (Server with its
// Handler, and the Client that `beatwrap report` and `beatwrap health` use,
// with FindSocket for a health check nobody told the path), and the
// Tracker that turns those reports, and the child's output while no report
// has arrived, into the task, progress, token and error counts of a beat and
// the decision that the agent has stalled.
package progress
