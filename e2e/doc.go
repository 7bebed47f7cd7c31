// Package e2e holds the end-to-end tests of recovery: the real beatwrap
// inside containers of the real Docker Engine, the real beatwatch, a real
// Redis, and a local HTTP server standing in for the alert webhook.
package e2e
