package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// quietLogger drops go-redis's own log lines: connection trouble is reported
// once per outage by the packages that use the client, not once per attempt.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietLogger{}) }

// Redis is one Redis (a single server, a Sentinel-watched master or a
// Cluster) as store's subpackages use it: the client, shared by all of them
// in one process, and the names of one namespace.
type Redis struct {
	// Client is the go-redis client; only store and its subpackages call it.
	Client redis.UniversalClient
	// Keys are the names of the namespace (Options.Namespace).
	Keys   Keys
	target *Target
}

// Open parses rawURL (any form of ParseRedisURL) and builds the client. It
// does not connect: the first call does, so an unreachable Redis never
// delays a start.
func Open(rawURL string, o Options) (*Redis, error) {
	t, err := ParseRedisURL(rawURL, o)
	if err != nil {
		return nil, err
	}
	return &Redis{Client: t.newClient(), Keys: Keys{Namespace: o.Namespace}, target: t}, nil
}

// Target is the parsed URL: topology, addresses, TLS.
func (r *Redis) Target() *Target { return r.target }

// String names the Redis, without credentials.
func (r *Redis) String() string { return r.target.String() }

// Cluster reports whether the Redis is a Cluster.
func (r *Redis) Cluster() bool { return r.target.Topology == Cluster }

// Close releases the connections.
func (r *Redis) Close() error { return r.Client.Close() }

// Failed is called after a call failed. On a Cluster the failure may be a
// master that died: the slot map is read again (in the background), so the
// next call goes to the replica that took over. go-redis only does it by
// itself on retries, which the callers make instead.
func (r *Redis) Failed() {
	if cc, ok := r.Client.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}
