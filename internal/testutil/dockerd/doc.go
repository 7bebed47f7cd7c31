// Package dockerd starts a Docker Engine of a test's own beside the
// system's (Start), with certificates to reach it over TLS, so that a test
// can have two engines on one machine; it can stop, crash and start it
// again, and tears every trace of it down when the test ends. Where no
// second engine can be started the test skips with the reason, or fails
// when CI=true.
package dockerd
