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
//     by the label beatwatch.agent=<id>. Containers without the recover label
//     (beatwatch.recover=true unless configured) are found but not Eligible:
//     they get an alert, never an action.
//   - Check inspects it and says whether to act: an operator's stop, a pause,
//     a removal or the engine's own restart policy are left alone.
//   - Restart restarts it, with the agent's grace as stop timeout.
//   - Replace creates a new container of the same configuration in its place
//     and removes the old one, or puts everything back as it was.
//
// Every action looks at the recover label again first: never a container
// without the label, never a shell command. What to do when, and what to
// record of it, is the recovery package's business.
package docker
