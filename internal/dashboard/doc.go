// Package dashboard serves beatwatch's view of the fleet over HTTP: the JSON
// API of the reference design (/health/agents, /health/agents/{id}), the
// beat intake of single-node mode (POST /v1/beats), Prometheus metrics
// (/metrics), the watcher's own liveness (/healthz) and a web page (/).
//
// With a token configured, every endpoint but /healthz needs
// "Authorization: Bearer <token>" (the page also takes ?access_token=, so a
// browser can open it).
package dashboard
