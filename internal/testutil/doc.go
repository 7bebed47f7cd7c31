// Package testutil starts the real parts tests need: a Redis server, the
// project's own binaries, images in the Docker Engine, and a second Docker
// Engine beside the system's (StartDockerd) with certificates to reach it
// over TLS. A test that cannot find a part it needs skips with a message,
// and fails instead when CI=true.
package testutil
