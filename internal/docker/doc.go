// Package docker is beatwatch's hand on the Docker Engine: it finds the
// container an agent runs in, judges it, restarts it or replaces it with a
// new one of the same configuration.
//
// It is the only package that imports the Docker client (the moby SDK), and
// it speaks the project's own types: a Container, a Verdict, errors matched
// with errors.Is (ErrNotFound, ErrNotEligible, ErrAmbiguous, ErrBadLabel).
// Dial builds an Engine over the Engine API (unix socket or DOCKER_HOST),
// negotiating the API version (Docker 20.10 speaks 1.41).
//
//   - Find locates an agent's container, by the containerId of its beats or
//     by the label beatwatch.agent=<id>. A container the beats name is taken
//     only when its own configuration names the agent (Owner: the label, or
//     --id / BEATWRAP_ID without it); otherwise ErrNotOwned says why. Containers without the recover label
//     (beatwatch.recover=true unless configured) are found but not Eligible:
//     they get an alert, never an action.
//   - Check inspects it and says whether to act: an operator's stop, a pause,
//     a removal or the engine's own restart policy are left alone.
//   - Restart restarts it, with the agent's grace as stop timeout, unless the
//     engine's top shows that its first process cannot use one (stopped, or
//     without a handler for the stop signal): then with none.
//   - Replace creates a new container of the same configuration in its place
//     and removes the old one, or puts everything back as it was.
//
// Every action looks at the recover label again first: never a container
// without the label, never one labelled for another namespace
// (beatwatch.namespace), never a shell command. With several engines,
// Identify (the engine's own ID and host name) and AgentContainers (which
// agents run there) tell them apart; ErrUnreachable says an engine does not
// answer. A tcp:// engine is reached over TLS as the Docker CLI does
// (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH). What to do when, and what to
// record of it, is the recovery package's business.
package docker
