// Package demo is beatwatch demo's runtime: a single-node watcher and five
// example agents, each a shell script run by the real beatwrap, that show
// every state in the first minute. Its recovery engine restarts an agent by
// starting its beatwrap again, where beatwatch serve restarts the agent's
// container; its agents end with it however it ends.
package demo
