package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// documentedACL returns the ACL users the README's Redis section gives for
// each binary ("user agent …", "user watcher …"), with the namespace ns
// put in front of every key and channel pattern and the passwords given.
func documentedACL(t *testing.T, ns string, passwords map[string]string) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "user" || !strings.HasPrefix(line, "    user ") {
			continue
		}
		pw, ok := passwords[f[1]]
		if !ok {
			continue
		}
		for i, r := range f {
			switch {
			case strings.HasPrefix(r, ">"):
				f[i] = ">" + pw
			case strings.HasPrefix(r, "&"):
				f[i] = "&" + ns + ":" + r[1:]
			case strings.Contains(r, "~") && !strings.HasPrefix(r, "+") && !strings.HasPrefix(r, "-"):
				k := strings.Index(r, "~")
				f[i] = r[:k+1] + ns + ":" + r[k+1:]
			}
		}
		users[f[1]] = strings.Join(f, " ")
	}
	for name := range passwords {
		if users[name] == "" {
			t.Fatalf("the README's Redis section gives no indented line \"user %s …\"", name)
		}
	}
	return users
}

// TestLockedDownRedis runs the real beatwatch and beatwrap against a real
// Redis that speaks only TLS to them, asks for client certificates, and
// knows them as the two ACL users the README documents, read from it: with
// --shards 2 and a checkpoint, every part of both binaries that touches
// Redis runs. The agent beats, stores a checkpoint that the watcher reads
// back, stops and is seen stopped; Redis's ACL LOG stays empty (a command
// refused inside a script says no NOPERM in the binaries' logs, so their
// logs alone would not tell); the logs name rediss:// and never a password.
func TestLockedDownRedis(t *testing.T) {
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		testutil.Unavailable(t, "redis-server not found")
	}
	dir := t.TempDir()
	certs := testutil.NewCerts(t, dir)
	ns := testutil.Namespace(t)
	const agentPW, watchPW, adminPW = "agent-pw-93e1", "watch-pw-6c0d", "admin-pw-11f2"
	users := documentedACL(t, ns, map[string]string{"agent": agentPW, "watcher": watchPW})
	acl := filepath.Join(dir, "users.acl")
	file := "user default off\n" + users["agent"] + "\n" + users["watcher"] + "\n" +
		"user admin on >" + adminPW + " ~* &* +@all\n" // the test's own, to read ACL LOG
	if err := os.WriteFile(acl, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsPort := testutil.FreePort(t)
	r := testutil.StartRedisWith(t, "--aclfile", acl,
		"--tls-port", strconv.Itoa(tlsPort), "--tls-cert-file", certs.ServerCert, "--tls-key-file", certs.ServerKey,
		"--tls-ca-cert-file", certs.CA, "--tls-auth-clients", "yes")
	url := func(user, pw string) string {
		return fmt.Sprintf("rediss://%s:%s@127.0.0.1:%d/0", user, pw, tlsPort)
	}
	tlsArgs := []string{"--redis-ca", certs.CA,
		"--redis-cert", filepath.Join(certs.ClientDir, "cert.pem"), "--redis-key", filepath.Join(certs.ClientDir, "key.pem")}
	admin := fmt.Sprintf("redis://admin:%s@%s/0", adminPW, r.Addr())

	w := startRedisWatcher(t, url("watcher", watchPW), ns, append([]string{"--shards", "2"}, tlsArgs...)...)
	done := filepath.Join(dir, "done")
	agent := startProc(t, "cmd/beatwrap", nil, append(append([]string{"--log-format", "json",
		"--redis", url("agent", agentPW), "--namespace", ns, "--shards", "2",
		"--id", "locked-1", "--interval", "200ms"}, tlsArgs...),
		"--", testutil.Binary(t, "cmd/beatwrap/testdata/reporter"),
		`send:{"task":"t","checkpoint":{"n":41}}`, "wait:"+done)...)
	w.waitState("locked-1", monitor.Healthy, 15*time.Second)
	deadline := time.After(15 * time.Second)
	for {
		code, c := w.checkpointOf("locked-1")
		if code == 200 && string(c.Checkpoint) == `{"n":41}` {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("the watcher does not read the agent's checkpoint back within 15s: %d %s", code, c.Checkpoint)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := os.WriteFile(done, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := agent.wait(15 * time.Second); code != 0 {
		t.Errorf("beatwrap exit code %d after its agent exited 0", code)
	}
	w.waitState("locked-1", monitor.Stopped, 15*time.Second)

	var entries []map[string]any
	out := testutil.RedisURLCLI(t, admin, "--no-auth-warning", "--json", "ACL", "LOG", "128")
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("ACL LOG: %v: %s", err, out)
	}
	for _, e := range entries {
		t.Errorf("redis refused %v %v to user %v (%v): the documented ACL is short of it", e["reason"], e["object"], e["username"], e["context"])
	}
	for name, logs := range map[string]string{"beatwatch": w.Stderr.String(), "beatwrap": agent.Stderr.String()} {
		if !strings.Contains(logs, "rediss://127.0.0.1:"+strconv.Itoa(tlsPort)) {
			t.Errorf("%s's log does not name rediss://127.0.0.1:%d:\n%s", name, tlsPort, logs)
		}
		for _, pw := range []string{agentPW, watchPW} {
			if strings.Contains(logs, pw) {
				t.Errorf("%s's log holds a password", name)
			}
		}
		if strings.Contains(logs, "not delivered") || strings.Contains(logs, "NOPERM") || strings.Contains(logs, "can't run this command") {
			t.Errorf("%s was refused something under its ACL:\n%s", name, logs)
		}
	}
}
