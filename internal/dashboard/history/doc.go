// Package history keeps what beatwatch's page of one agent shows beyond the
// monitor's view: the agent's last state changes with their reasons, the
// restarts beatwrap made in place, and its CPU and memory over the last hour.
// History is a monitor subscriber and is told of every accepted beat; it
// keeps a bounded set of agents (MaxTracked), so its memory does not grow
// with the fleet. Package dashboard serves it as GET /v1/agents/{id}/history.
package history
