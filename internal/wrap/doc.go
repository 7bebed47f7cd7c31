// Package wrap is beatwrap's runtime: it runs the agent under a supervisor,
// listens on the progress socket, samples the process tree, decides the
// agent's status and hands beats to the store, as one group of actors that
// start and stop together.
//
//	signals ─▶ supervise (child) ─▶ exit code
//	socket  ─▶ progress.Tracker ─┐
//	probe (every interval) ──────┴─▶ beat ─▶ publish.Sender ─▶ Redis | beatwatch
//	                                  └──▶ health (socket query, /livez, /metrics)
//
// Nothing here waits on the network: a beat is offered to the Sender and the
// loop goes on, so monitoring trouble never slows, stops or restarts the agent.
// The health answer comes from the same snapshot and status as the beat;
// the health server (--health-listen) only reads what the beat loop holds.
package wrap
