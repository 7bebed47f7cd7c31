package store

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Topology is the kind of Redis deployment a --redis URL names.
type Topology int

// The three forms of a --redis URL, as go-redis reads them.
const (
	// Single is one server: redis[s]://[user:pass@]host:port[/db].
	Single Topology = iota
	// Sentinel is a master found through its sentinels:
	// redis[s]://[user:pass@]sentinel1:port?master_name=NAME&addr=sentinel2:port…
	// (user:pass are the sentinels'; password= and username= are the master's).
	Sentinel
	// Cluster is a Redis Cluster, reached through any of its nodes:
	// redis[s]://[user:pass@]node1:port?addr=node2:port&addr=… (no master_name).
	Cluster
)

func (t Topology) String() string {
	switch t {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	}
	return "single"
}

// Options are how a Redis is reached: the namespace, the credentials and
// TLS files the URL does not carry, and how long one call may take. A beat
// that cannot be delivered quickly is worth less than the next one.
type Options struct {
	Namespace   string
	DialTimeout time.Duration // default 2s
	IOTimeout   time.Duration // default 2s
	PoolSize    int           // default 2 (per node on a Cluster)
	// Password, when set, replaces the URL's password (the master's, on
	// Sentinel; every node's, on a Cluster): --redis-password-file keeps it
	// out of the URL, the process list and the environment.
	Password string
	// TLS are the CA and client certificate files for a rediss:// URL.
	TLS TLSFiles
}

// Target is a parsed --redis URL: which topology, which addresses, and the
// client options for it.
type Target struct {
	Topology Topology
	// Addrs are the server, the sentinels or the Cluster nodes given.
	Addrs []string
	// MasterName is the Sentinel master's name.
	MasterName string
	// TLS says the connections are TLS (rediss://).
	TLS bool
	// SkipVerify says the URL turned certificate checks off
	// (skip_verify=true): anyone on the path can read and forge beats.
	SkipVerify bool

	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// String names the target for logs, without credentials:
// redis://host:port, sentinel://NAME@s1:port,s2:port or cluster://n1:port,n2:port.
// Over TLS the scheme says so: rediss://, sentinel+tls://, cluster+tls://.
func (t *Target) String() string {
	tls := ""
	if t.TLS {
		tls = "+tls"
	}
	switch t.Topology {
	case Sentinel:
		return "sentinel" + tls + "://" + t.MasterName + "@" + strings.Join(t.Addrs, ",")
	case Cluster:
		return "cluster" + tls + "://" + strings.Join(t.Addrs, ",")
	}
	if t.TLS {
		return "rediss://" + strings.Join(t.Addrs, ",")
	}
	return "redis://" + strings.Join(t.Addrs, ",")
}

// newClient builds the go-redis client for the target; it does not connect.
func (t *Target) newClient() redis.UniversalClient {
	switch t.Topology {
	case Sentinel:
		return redis.NewFailoverClient(t.failover)
	case Cluster:
		return redis.NewClusterClient(t.cluster)
	}
	return redis.NewClient(t.single)
}

// sentinelOnly and clusterOnly are the query options that belong to one
// form only: seeing one in the other form is a URL that mixes forms.
var (
	sentinelOnly = []string{"master_name", "replica_only", "use_disconnected_replicas", "sentinel_username", "sentinel_password", "db", "username", "password", "skip_verify"}
	clusterOnly  = []string{"max_redirects", "read_only", "failing_timeout_seconds"}
)

// ParseRedisURL reads a --redis URL in one of go-redis's three forms (see
// Topology): master_name makes it Sentinel; several addresses (addr=) without
// it make it Cluster; one address is a single server. The errors name the
// form and what in the URL does not fit it.
func ParseRedisURL(raw string, o Options) (*Target, error) {
	if !strings.HasPrefix(raw, "redis://") && !strings.HasPrefix(raw, "rediss://") {
		return nil, fmt.Errorf("redis url must start with redis:// or rediss://, got %q", redact(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse redis url %q: %w", redact(raw), redactErr(err, raw))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("redis url %q has no host", redact(raw))
	}
	q := u.Query()
	o = o.withDefaults()
	t := &Target{Addrs: []string{hostPort(u)}}
	for _, a := range q["addr"] {
		h, p, err := net.SplitHostPort(a)
		if err != nil || h == "" || p == "" {
			return nil, fmt.Errorf("redis url %q: addr=%q must be host:port", redact(raw), a)
		}
		a = net.JoinHostPort(h, p)
		if slices.Contains(t.Addrs, a) {
			return nil, fmt.Errorf("redis url %q names %s twice", redact(raw), a)
		}
		t.Addrs = append(t.Addrs, a)
	}
	switch {
	case q.Has("master_name"):
		t.Topology = Sentinel
		t.MasterName = q.Get("master_name")
		if t.MasterName == "" {
			return nil, fmt.Errorf("redis url %q: master_name is empty: the Sentinel form needs the name the sentinels know the master by", redact(raw))
		}
		if k := firstOf(q, clusterOnly); k != "" {
			return nil, fmt.Errorf("redis url %q mixes forms: %s= is a Cluster option, but master_name= makes it the Sentinel form", redact(raw), k)
		}
		fo, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis url %q (Sentinel form): %w", redact(raw), redactErr(err, raw))
		}
		o.applyFailover(fo)
		t.failover = fo
	case len(t.Addrs) > 1:
		t.Topology = Cluster
		if k := firstOf(q, sentinelOnly); k != "" {
			return nil, fmt.Errorf("redis url %q mixes forms: %s= is a Sentinel or single-server option, but several addresses without master_name make it the Cluster form", redact(raw), k)
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return nil, fmt.Errorf("redis url %q: a Redis Cluster has only db 0, got /%s", redact(raw), p)
		}
		u2 := *u
		u2.Path = ""
		co, err := redis.ParseClusterURL(u2.String())
		if err != nil {
			return nil, fmt.Errorf("redis url %q (Cluster form): %w", redact(raw), redactErr(err, raw))
		}
		o.applyCluster(co)
		t.cluster = co
	default:
		if k := firstOf(q, clusterOnly); k != "" {
			return nil, fmt.Errorf("redis url %q mixes forms: %s= is a Cluster option, but one address makes it a single server (add addr=host:port for each further node)", redact(raw), k)
		}
		opt, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("parse redis url %q: %w", redact(raw), redactErr(err, raw))
		}
		o.applySingle(opt)
		t.single = opt
	}
	if err := t.applyTLS(o.TLS); err != nil {
		return nil, err
	}
	return t, nil
}

// applyTLS loads the TLS files into the client options and notes whether the
// URL is TLS and whether it turned verification off.
func (t *Target) applyTLS(files TLSFiles) error {
	var cfg *tls.Config
	switch {
	case t.single != nil:
		cfg = t.single.TLSConfig
	case t.failover != nil:
		cfg = t.failover.TLSConfig
	case t.cluster != nil:
		cfg = t.cluster.TLSConfig
	}
	if cfg == nil {
		if files.any() {
			file, path := files.given()
			return &TLSError{File: file, Path: path, Err: fmt.Errorf("%w, got %s", ErrNotRediss, t)}
		}
		return nil
	}
	t.TLS, t.SkipVerify = true, cfg.InsecureSkipVerify
	return files.apply(cfg)
}

func hostPort(u *url.URL) string {
	h, p := u.Hostname(), u.Port()
	if h == "" {
		h = "localhost"
	}
	if p == "" {
		p = "6379"
	}
	return net.JoinHostPort(h, p)
}

func firstOf(q url.Values, keys []string) string {
	for _, k := range keys {
		if q.Has(k) {
			return k
		}
	}
	return ""
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 2 * time.Second
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 2
	}
	return o
}

// The settings below are the same for the three forms: one dial attempt and
// no retry per call (publish.Sender retries with the newest beat,
// redisfleet.Watcher resubscribes by itself), short timeouts, RESP2, no CLIENT SETINFO, no
// maintenance notifications (which older servers refuse).

func (o Options) applySingle(opt *redis.Options) {
	if o.Password != "" {
		opt.Password = o.Password
	}
	opt.DialTimeout = o.DialTimeout
	opt.ReadTimeout = o.IOTimeout
	opt.WriteTimeout = o.IOTimeout
	opt.PoolSize = o.PoolSize
	opt.DialerRetries = 1
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true
	opt.Protocol = 2
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

func (o Options) applyFailover(opt *redis.FailoverOptions) {
	if o.Password != "" {
		opt.Password = o.Password
	}
	opt.DialTimeout = o.DialTimeout
	opt.ReadTimeout = o.IOTimeout
	opt.WriteTimeout = o.IOTimeout
	opt.PoolSize = o.PoolSize
	opt.DialerRetries = 1
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true
	opt.Protocol = 2
}

func (o Options) applyCluster(opt *redis.ClusterOptions) {
	if o.Password != "" {
		opt.Password = o.Password
	}
	opt.DialTimeout = o.DialTimeout
	opt.ReadTimeout = o.IOTimeout
	opt.WriteTimeout = o.IOTimeout
	opt.PoolSize = o.PoolSize
	opt.DialerRetries = 1
	// A failover moves slots: MOVED is followed at once, whatever the
	// retries; a call to a dead master fails and the next beat finds the new
	// one after the slot map is reloaded.
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true
	opt.Protocol = 2
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}
