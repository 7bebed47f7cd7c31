package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestLockedDownRedis runs the real beatwatch and beatwrap against a real
// Redis that speaks only TLS to them, asks for client certificates, and
// knows them as two ACL users: the agent's, with the minimum the README
// gives, and the watcher's, which may not publish beats. The agent beats,
// is healthy, stops and is seen stopped; the logs name rediss:// and never a
// password.
func TestLockedDownRedis(t *testing.T) {
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		testutil.Unavailable(t, "redis-server not found")
	}
	dir := t.TempDir()
	certs := testutil.NewCerts(t, dir)
	ns := testutil.Namespace(t)
	const agentPW, watchPW = "agent-pw-93e1", "watch-pw-6c0d"
	acl := filepath.Join(dir, "users.acl")
	users := fmt.Sprintf("user default off\n"+
		"user agent on >%s ~%s:agent:* &%s:heartbeats +multi +exec +publish +hset +hsetnx +hdel +pexpire +get +eval +evalsha\n"+
		"user watcher on >%s ~%s:* &%s:* +@all -@dangerous -publish -spublish\n",
		agentPW, ns, ns, watchPW, ns, ns)
	if err := os.WriteFile(acl, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsPort := testutil.FreePort(t)
	testutil.StartRedisWith(t, "--aclfile", acl,
		"--tls-port", strconv.Itoa(tlsPort), "--tls-cert-file", certs.ServerCert, "--tls-key-file", certs.ServerKey,
		"--tls-ca-cert-file", certs.CA, "--tls-auth-clients", "yes")
	url := func(user, pw string) string {
		return fmt.Sprintf("rediss://%s:%s@127.0.0.1:%d/0", user, pw, tlsPort)
	}
	tlsArgs := []string{"--redis-ca", certs.CA,
		"--redis-cert", filepath.Join(certs.ClientDir, "cert.pem"), "--redis-key", filepath.Join(certs.ClientDir, "key.pem")}

	w := startRedisWatcher(t, url("watcher", watchPW), ns, tlsArgs...)
	agent := startAgent(t, append([]string{"--redis", url("agent", agentPW), "--namespace", ns,
		"--id", "locked-1", "--interval", "200ms"}, tlsArgs...)...)
	w.waitState("locked-1", monitor.Healthy, 15*time.Second)
	agent.signal(syscall.SIGTERM)
	if code := agent.wait(15 * time.Second); code != 143 && code != 0 {
		t.Errorf("beatwrap exit code %d after SIGTERM", code)
	}
	w.waitState("locked-1", monitor.Stopped, 15*time.Second)

	for name, logs := range map[string]string{"beatwatch": w.Stderr.String(), "beatwrap": agent.Stderr.String()} {
		if !strings.Contains(logs, "rediss://127.0.0.1:"+strconv.Itoa(tlsPort)) {
			t.Errorf("%s's log does not name rediss://127.0.0.1:%d:\n%s", name, tlsPort, logs)
		}
		for _, pw := range []string{agentPW, watchPW} {
			if strings.Contains(logs, pw) {
				t.Errorf("%s's log holds a password", name)
			}
		}
		if strings.Contains(logs, "not delivered") || strings.Contains(logs, "NOPERM") {
			t.Errorf("%s was refused something under its ACL:\n%s", name, logs)
		}
	}
}
