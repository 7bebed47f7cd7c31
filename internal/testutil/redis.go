package testutil

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisEnv names the variable that points tests at a running Redis
// (redis://127.0.0.1:PORT). .ci/run and the Makefile set it.
const RedisEnv = "BEATWRAP_TEST_REDIS"

// Unavailable skips the test, or fails it when CI=true: in CI every part
// must be there.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: required)", msg)
	}
	t.Skip(msg)
}

// RedisURL returns the URL of a Redis for the test: the shared one from
// $BEATWRAP_TEST_REDIS, else a server of its own. Tests that share a Redis use
// their own namespace (see Namespace).
func RedisURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(RedisEnv); u != "" {
		return u
	}
	return StartRedis(t).URL()
}

var nsCounter struct {
	sync.Mutex
	n int
}

// Namespace returns a namespace no other test in this run uses.
func Namespace(t testing.TB) string {
	nsCounter.Lock()
	defer nsCounter.Unlock()
	nsCounter.n++
	return fmt.Sprintf("t%d-%d", os.Getpid(), nsCounter.n)
}

// Redis is a redis-server owned by one test, which it can stop and start
// again on the same port to simulate an outage.
type Redis struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
	bin  string   // redis-server (default) or redis-sentinel
	args []string // added to the server's options; a sentinel's config file
}

// StartRedis starts a redis-server on a free loopback port, without
// persistence, and stops it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(t, "redis-server not found on PATH (apt-get install redis-server)")
	}
	r := &Redis{t: t, port: FreePort(t), dir: t.TempDir()}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// StartRedisWith starts a redis-server as StartRedis does, with args added
// to its options (--requirepass, --aclfile, --tls-port and the like).
func StartRedisWith(t testing.TB, args ...string) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(t, "redis-server not found on PATH (apt-get install redis-server)")
	}
	r := &Redis{t: t, port: FreePort(t), dir: t.TempDir(), args: args}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Port is the server's plain TCP port.
func (r *Redis) Port() int { return r.port }

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// Addr is host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// Start starts the server (again) and waits until it answers.
func (r *Redis) Start() {
	r.t.Helper()
	if r.cmd != nil {
		return
	}
	var cmd *exec.Cmd
	if r.bin == "redis-sentinel" {
		cmd = exec.Command(r.bin, r.args...)
	} else {
		cmd = exec.Command("redis-server", append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "no"}, r.args...)...)
	}
	deathSignal(cmd)
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start %s: %v", cmd.Path, err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ping(r.Addr()) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Stop()
	r.t.Fatalf("%s on %s did not answer PING within 10s", cmd.Path, r.Addr())
}

// Stop kills the server and waits for it to exit.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// A server that wants a password answers too: it is up.
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RedisURLCLI runs redis-cli against the Redis at url with args, as an
// attacker on the same Redis would, and returns its trimmed output.
func RedisURLCLI(t testing.TB, url string, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-u", url}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// RedisPublish publishes payload on channel of the Redis at url.
func RedisPublish(t testing.TB, url, channel, payload string) {
	t.Helper()
	RedisURLCLI(t, url, "PUBLISH", channel, payload)
}
