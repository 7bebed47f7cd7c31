// Package ladder acts on one failed agent's container through one Docker
// Engine: it finds the container and checks that it may touch it (Find),
// then inspects it, restarts it and, if the agent does not beat again,
// replaces it (Climb), waiting after each step for the agent's transition
// to healthy (Beats), not on a poll. Every step is reported as it is taken
// (StepResult), for the agent's history, the logs and
// beatwatch_recoveries_total.
//
// It decides nothing about whether, when or by whom an agent is recovered,
// and tells no human: package recovery does, under package guard's policy,
// with what the Outcome says (the agent beats again, an operator acted on
// the container, the engine does not answer, or what an alert must say).
//
// Never a shell command, never a container without the label.
package ladder
