// Package dashboard serves beatwatch's view of the fleet over HTTP: the JSON
// API of the reference design (/health/agents, /health/agents/{id}), the
// beat intake of single-node mode (POST /v1/beats), the agents' checkpoints
// (PUT/GET /v1/agents/{id}/checkpoint, POST /v1/agents/{id}/epoch: kept in
// memory in single-node mode, read from Redis otherwise), Prometheus metrics
// (/metrics), the watcher's own liveness (/healthz) and a web page (/).
//
// With a token configured, every endpoint but /healthz needs
// "Authorization: Bearer <token>" (the scheme in any case); the token is
// never taken from the URL. Whatever the token, a write that a browser says
// comes from a page of another origin (Sec-Fetch-Site, Origin) is refused
// with 403, and a beat must be sent as application/json (415 otherwise): a
// web page the user opens can reach a watcher on 127.0.0.1, and may send
// text/plain there without asking first. A local process that sends neither
// header (beatwrap, curl) needs no token when none is set.
package dashboard
