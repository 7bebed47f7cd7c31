// Package dashboard serves beatwatch's view of the fleet over HTTP: the JSON
// API of the reference design (/health/agents, /health/agents/{id}), the
// beat intake of single-node mode (POST /v1/beats), the agents' checkpoints
// (PUT/GET /v1/agents/{id}/checkpoint, POST /v1/agents/{id}/epoch: kept in
// memory in single-node mode, read from Redis otherwise), the transitions as
// server-sent events (/v1/events), an agent's timeline and samples
// (/v1/agents/{id}/history), Prometheus metrics (/metrics), the watcher's
// own liveness (/healthz) and the operator's pages: the fleet (/) and one
// agent (/agents/{id}), plain HTML, CSS and JavaScript embedded in the
// binary.
//
// With a token configured, every endpoint but /healthz needs
// "Authorization: Bearer <token>" (the scheme in any case); the token is
// never taken from the URL. Whatever the token, a write that a browser says
// comes from a page of another origin (Sec-Fetch-Site, Origin) is refused
// with 403, and a beat must be sent as application/json (415 otherwise): a
// web page the user opens can reach a watcher on 127.0.0.1, and may send
// text/plain there without asking first. A local process that sends neither
// header (beatwrap, curl) needs no token when none is set.
//
// The pages' files (/, /agents/{id}, /assets/) hold no data and are served
// without the token, since a browser cannot send a header when it opens a
// URL; their scripts read everything from the API with the token the user
// gives (#token=… in the URL, which is never sent, or the form the page
// shows), kept for the browser tab only.
//
// Events is a monitor subscriber that never blocks: each stream has a
// bounded buffer, and a stream that falls behind is told to reload and
// closed. The timelines and samples of the agent page are kept by package
// history, under this one, for a bounded set of agents.
package dashboard
