// Package e2e holds the end-to-end tests of recovery: the real beatwrap
// inside containers of the real Docker Engine, the real beatwatch, a real
// Redis, and a local HTTP server standing in for the alert webhook. The
// tests of many hosts (hosts_test.go) start a second Docker Engine beside
// the system's (package testutil/dockerd), reached over TLS by one replica, and
// skip with a message where dockerd cannot be started (fail under CI=true).
package e2e
