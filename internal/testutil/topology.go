package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file starts the two Redis topologies that beatwrap and beatwatch
// scale out on: a Redis Cluster and a master watched by Sentinel, each made
// of real Debian redis-server / redis-sentinel processes on loopback ports.
// Every process is killed when the test ends, and with the test process if
// that dies first (Pdeathsig), so no server outlives a run.

// RedisCLI runs redis-cli against addr (host:port) and returns its trimmed
// output, failing the test on error.
func RedisCLI(t testing.TB, addr string, args ...string) string {
	t.Helper()
	out, err := RedisCLITry(addr, args...)
	if err != nil {
		t.Fatalf("redis-cli -h %s %s: %v\n%s", addr, strings.Join(args, " "), err, out)
	}
	return out
}

// RedisCLITry runs redis-cli against addr and returns output and error.
func RedisCLITry(addr string, args ...string) (string, error) {
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func requireBinary(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		Unavailable(t, "%s not found on PATH (apt-get install %s)", name, pkg)
	}
}

// startServer starts one redis-server (or redis-sentinel) process with args
// and waits until it answers PING.
func startServer(t testing.TB, bin string, port int, args ...string) *Redis {
	t.Helper()
	r := &Redis{t: t, port: port, dir: t.TempDir(), bin: bin, args: args}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Cluster is a Redis Cluster of loopback servers owned by one test.
type Cluster struct {
	t     testing.TB
	Nodes []*Redis
}

// StartCluster starts masters × (1 + replicas) servers in cluster mode, joins
// them with redis-cli --cluster create and waits until the cluster is ok on
// every node. A node is failed over after 1s without answering
// (cluster-node-timeout), so tests can kill a master and see its replica
// take over within a few seconds.
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	requireBinary(t, "redis-server", "redis-server")
	requireBinary(t, "redis-cli", "redis-tools")
	c := &Cluster{t: t}
	var addrs []string
	for range masters * (1 + replicas) {
		port, bus := FreePort(t), FreePort(t)
		n := startServer(t, "redis-server", port,
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
			// A replica may take over even if it lost touch with its master
			// a moment before the master died.
			"--cluster-replica-validity-factor", "0",
			"--cluster-require-full-coverage", "no")
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	cmd := exec.Command("redis-cli", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(30 * time.Second)
	return c
}

// URL is the cluster's URL in go-redis's Cluster form: every node, the first
// as the host, the others as addr=.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr()
	sep := "?"
	for _, n := range c.Nodes[1:] {
		u += sep + "addr=" + n.Addr()
		sep = "&"
	}
	return u
}

// WaitOK waits until every running node says cluster_state:ok and agrees on
// which nodes are masters and own slots.
func (c *Cluster) WaitOK(timeout time.Duration) {
	c.t.Helper()
	Eventually(c.t, timeout, "redis cluster ok on every running node", func() bool {
		for _, n := range c.Nodes {
			if n.cmd == nil {
				continue
			}
			out, err := RedisCLITry(n.Addr(), "cluster", "info")
			if err != nil || !strings.Contains(out, "cluster_state:ok") {
				return false
			}
		}
		return true
	})
}

// Masters returns the addresses of the running masters that own slots, as
// the first running node sees them.
func (c *Cluster) Masters() []string {
	c.t.Helper()
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		out, err := RedisCLITry(n.Addr(), "cluster", "nodes")
		if err != nil {
			continue
		}
		var masters []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			// id addr@bus flags master ping pong epoch link slot...
			if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
				continue
			}
			addr, _, _ := strings.Cut(f[1], "@")
			masters = append(masters, addr)
		}
		return masters
	}
	c.t.Fatalf("no running cluster node answers CLUSTER NODES")
	return nil
}

// Node returns the node with address addr.
func (c *Cluster) Node(addr string) *Redis {
	c.t.Helper()
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	c.t.Fatalf("no cluster node %s", addr)
	return nil
}

// Sentinels is a master, its replica and three sentinels watching them, all
// on loopback ports, owned by one test.
type Sentinels struct {
	t          testing.TB
	MasterName string
	Servers    []*Redis // [0] is the first master, [1] its replica
	Sentinels  []*Redis
}

// StartSentinels starts a master, one replica of it and three sentinels
// (quorum 2) that declare the master down after 1s, and waits until every
// sentinel knows the replica and the other sentinels, so that a failover can
// happen.
func StartSentinels(t testing.TB) *Sentinels {
	t.Helper()
	requireBinary(t, "redis-server", "redis-server")
	requireBinary(t, "redis-sentinel", "redis-sentinel")
	requireBinary(t, "redis-cli", "redis-tools")
	s := &Sentinels{t: t, MasterName: "beatmaster"}
	master := startServer(t, "redis-server", FreePort(t))
	replica := startServer(t, "redis-server", FreePort(t), "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	s.Servers = []*Redis{master, replica}
	Eventually(t, 20*time.Second, "replica in sync with its master", func() bool {
		out, _ := RedisCLITry(replica.Addr(), "info", "replication")
		return strings.Contains(out, "master_link_status:up")
	})
	for range 3 {
		port := FreePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
dir %s
sentinel resolve-hostnames no
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 4000
sentinel parallel-syncs %s 1
`, port, dir, s.MasterName, master.port, s.MasterName, s.MasterName, s.MasterName)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s.Sentinels = append(s.Sentinels, startServer(t, "redis-sentinel", port, conf))
	}
	Eventually(t, 30*time.Second, "every sentinel knows the replica and the two other sentinels", func() bool {
		for _, sn := range s.Sentinels {
			out, err := RedisCLITry(sn.Addr(), "sentinel", "master", s.MasterName)
			if err != nil || !hasField(out, "num-slaves", "1") || !hasField(out, "num-other-sentinels", "2") {
				return false
			}
		}
		return true
	})
	return s
}

// hasField reports whether redis-cli's line-per-item output of a flat
// key/value reply holds key followed by value.
func hasField(out, key, value string) bool {
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == key && strings.TrimSpace(lines[i+1]) == value {
			return true
		}
	}
	return false
}

// URL is the topology's URL in go-redis's Sentinel form: the sentinels, and
// the master's name.
func (s *Sentinels) URL() string {
	u := "redis://" + s.Sentinels[0].Addr() + "?master_name=" + s.MasterName
	for _, sn := range s.Sentinels[1:] {
		u += "&addr=" + sn.Addr()
	}
	return u
}

// Master returns the server the sentinels currently name as master.
func (s *Sentinels) Master() *Redis {
	s.t.Helper()
	for _, sn := range s.Sentinels {
		out, err := RedisCLITry(sn.Addr(), "sentinel", "get-master-addr-by-name", s.MasterName)
		if err != nil {
			continue
		}
		f := strings.Fields(out)
		if len(f) != 2 {
			continue
		}
		for _, srv := range s.Servers {
			if srv.Addr() == f[0]+":"+f[1] {
				return srv
			}
		}
	}
	s.t.Fatalf("no sentinel names a known master")
	return nil
}

// WaitFailover waits until the sentinels name a master other than old, and
// that master accepts writes.
func (s *Sentinels) WaitFailover(old *Redis, timeout time.Duration) *Redis {
	s.t.Helper()
	var now *Redis
	Eventually(s.t, timeout, "sentinels fail over to a new master", func() bool {
		for _, sn := range s.Sentinels {
			out, err := RedisCLITry(sn.Addr(), "sentinel", "get-master-addr-by-name", s.MasterName)
			if err != nil {
				continue
			}
			f := strings.Fields(out)
			if len(f) == 2 && f[0]+":"+f[1] != old.Addr() {
				for _, srv := range s.Servers {
					if srv.Addr() == f[0]+":"+f[1] {
						role, _ := RedisCLITry(srv.Addr(), "role")
						if strings.HasPrefix(role, "master") {
							now = srv
							return true
						}
					}
				}
			}
		}
		return false
	})
	return now
}
