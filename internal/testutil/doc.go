// Package testutil starts the real parts tests need: a Redis server and the
// project's own binaries. A test that cannot find a part it needs skips with
// a message, and fails instead when CI=true.
package testutil
