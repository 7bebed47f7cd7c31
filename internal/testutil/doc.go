// Package testutil starts the real parts tests need: a Redis server (and
// Redis Cluster and Sentinel topologies), the project's own binaries, images
// in the Docker Engine, and certificates for TLS. A second Docker Engine
// beside the system's is in package testutil/dockerd. A test that cannot
// find a part it needs skips with a message, and fails instead when CI=true.
package testutil
