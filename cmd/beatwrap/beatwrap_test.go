package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// These tests build the real beatwrap binary and drive it against small real
// programs and a real Redis.

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.CleanupBinaries()
	os.Exit(code)
}

// agentRun is one beatwrap process under test.
type agentRun struct {
	*testutil.Proc
	cmd    *exec.Cmd
	stderr *testutil.Buffer
	stdout *testutil.Buffer
}

// startBeatwrap runs the beatwrap binary with args. env is added to the
// test's environment; an entry without "=" (just NAME) removes NAME.
func startBeatwrap(t *testing.T, env []string, args ...string) *agentRun {
	t.Helper()
	p := testutil.StartProcEnv(t, testutil.Binary(t, "cmd/beatwrap"),
		withEnv(append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir()), env), args...)
	return &agentRun{Proc: p, cmd: p.Cmd, stderr: p.Stderr, stdout: p.Stdout}
}

// withEnv adds env to base; an entry without "=" removes that variable.
func withEnv(base, env []string) []string {
	out := base[:len(base):len(base)]
	for _, kv := range env {
		if strings.Contains(kv, "=") {
			out = append(out, kv)
			continue
		}
		kept := out[:0:0]
		for _, b := range out {
			if !strings.HasPrefix(b, kv+"=") {
				kept = append(kept, b)
			}
		}
		out = kept
	}
	return out
}

// wait returns beatwrap's exit code, failing the test after timeout.
// wait returns beatwrap's exit code, failing the test after timeout.
func (r *agentRun) wait(timeout time.Duration) int { return r.Wait(timeout) }

func (r *agentRun) signal(sig syscall.Signal) { r.Signal(sig) }

// beats subscribes to the namespace's heartbeats channel.
type beats struct {
	t   *testing.T
	sub *redis.PubSub
	raw *redis.Client
	ns  string
}

func subscribe(t *testing.T, url string) *beats {
	t.Helper()
	return subscribeNS(t, url, testutil.Namespace(t))
}

func subscribeNS(t *testing.T, url, ns string) *beats {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	raw := redis.NewClient(opt)
	sub := raw.Subscribe(context.Background(), ns+":heartbeats")
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { sub.Close(); raw.Close() })
	return &beats{t: t, sub: sub, raw: raw, ns: ns}
}

// next returns the next beat that satisfies ok, failing after timeout.
func (b *beats) next(timeout time.Duration, ok func(wire.Beat) bool) wire.Beat {
	b.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case msg := <-b.sub.Channel():
			beat, err := wire.ParseBeat([]byte(msg.Payload))
			if err != nil {
				b.t.Fatalf("beat on the channel does not parse: %v: %s", err, msg.Payload)
			}
			if ok == nil || ok(beat) {
				return beat
			}
		case <-deadline:
			b.t.Fatalf("no matching beat within %v", timeout)
			return wire.Beat{}
		}
	}
}

func (b *beats) hash(id string) map[string]string {
	return b.raw.HGetAll(context.Background(), b.ns+":agent:"+id).Val()
}

func TestBeatsArriveWithContractFields(t *testing.T) {
	url := testutil.RedisURL(t)
	bs := subscribe(t, url)
	r := startBeatwrap(t, nil, "--redis", url, "--namespace", bs.ns, "--id", "summariser-1",
		"--interval", "200ms", "--", "sh", "-c", "sleep 30")

	first := bs.next(10*time.Second, nil)
	var last uint64 = first.Sequence
	for i := 0; i < 3; i++ {
		b := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Status != wire.StatusStarting })
		if b.Sequence <= last {
			t.Fatalf("sequence went from %d to %d", last, b.Sequence)
		}
		last = b.Sequence
		if b.AgentID != "summariser-1" || b.AgentType != "sh" || b.IntervalMs != 200 || b.MissedBeats != 3 ||
			b.PID == 0 || b.Host == "" || b.Status != wire.StatusHealthy {
			t.Fatalf("beat lacks contract fields: %+v", b)
		}
		if d := time.Since(time.UnixMilli(b.Timestamp)); d < 0 || d > 5*time.Second {
			t.Fatalf("timestamp %d is %v from now", b.Timestamp, d)
		}
	}
	h := bs.hash("summariser-1")
	for _, f := range []string{"registeredAt", "type", "host", "pid", "status", "lastHeartbeat", "sequence", "cpuPercent", "memoryMB"} {
		if h[f] == "" {
			t.Errorf("hash field %s missing: %v", f, h)
		}
	}
	ttl := bs.raw.PTTL(context.Background(), bs.ns+":agent:summariser-1").Val()
	if ttl <= 0 || ttl > 800*time.Millisecond {
		t.Errorf("hash TTL = %v, want at most 4 × 200ms", ttl)
	}

	r.signal(syscall.SIGTERM)
	if code := r.wait(10 * time.Second); code != 143 {
		t.Errorf("exit code after SIGTERM to a child that dies of it = %d, want 143", code)
	}
	final := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Status.Final() })
	if final.Status != wire.StatusStopped {
		t.Errorf("final beat after SIGTERM = %q, want stopped", final.Status)
	}
	h = bs.hash("summariser-1")
	if h["status"] != "stopped" || h["stoppedAt"] == "" {
		t.Errorf("hash after stop = %v, want status stopped and stoppedAt", h)
	}
}

func TestExitCodes(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		argv  []string
		want  int
		final wire.Status
	}{
		{"exit 0", []string{"sh", "-c", "exit 0"}, 0, wire.StatusStopped},
		{"exit 7", []string{"sh", "-c", "exit 7"}, 7, wire.StatusExited},
		{"SIGKILL", []string{"sh", "-c", "kill -9 $$"}, 137, wire.StatusExited},
		{"not found", []string{"no-such-command-here"}, 127, wire.StatusExited},
		{"not executable", []string{notExec}, 126, wire.StatusExited},
	}
	url := testutil.RedisURL(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := subscribe(t, url)
			r := startBeatwrap(t, nil, append([]string{"--redis", url, "--namespace", bs.ns, "--id", "x", "--interval", "1s", "--"}, tt.argv...)...)
			if got := r.wait(10 * time.Second); got != tt.want {
				t.Fatalf("exit code = %d, want %d; stderr:\n%s", got, tt.want, r.stderr)
			}
			final := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Status.Final() })
			if final.Status != tt.final {
				t.Errorf("final status = %q, want %q", final.Status, tt.final)
			}
			if tt.final == wire.StatusExited && (final.ExitCode == nil || *final.ExitCode != tt.want) {
				t.Errorf("final beat exitCode = %v, want %d", final.ExitCode, tt.want)
			}
		})
	}
}

func TestTermForwardedAndHonoured(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "got-term")
	script := fmt.Sprintf(`trap 'echo yes > %s; exit 0' TERM; while :; do sleep 0.05; done`, mark)
	r := startBeatwrap(t, nil, "--interval", "1s", "--", "sh", "-c", script)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	r.signal(syscall.SIGTERM)
	if code := r.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit code = %d, want 0 (the child handled TERM); stderr:\n%s", code, r.stderr)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %v; a child that honours TERM should not wait out the grace", d)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("child did not see SIGTERM: %v", err)
	}
}

func TestTermIgnoredKilledAfterGraceWithGrandchildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	script := fmt.Sprintf(`trap '' TERM; sh -c 'trap "" TERM; echo $$ > %s; exec sleep 60' & while :; do sleep 0.05; done`, pidFile)
	r := startBeatwrap(t, nil, "--grace", "500ms", "--interval", "1s", "--", "sh", "-c", script)
	gpid := waitPIDFile(t, pidFile)
	start := time.Now()
	r.signal(syscall.SIGTERM)
	code := r.wait(10 * time.Second)
	took := time.Since(start)
	if code != 137 {
		t.Errorf("exit code = %d, want 137 (killed after grace)", code)
	}
	if took < 400*time.Millisecond {
		t.Errorf("killed after %v, before the 500ms grace", took)
	}
	if alive(gpid, 2*time.Second) {
		t.Errorf("grandchild %d still alive after the group was killed", gpid)
	}
}

func TestSecondTermSkipsGrace(t *testing.T) {
	r := startBeatwrap(t, nil, "--grace", "30s", "--interval", "1s", "--", "sh", "-c", `trap '' TERM; while :; do sleep 0.05; done`)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	r.signal(syscall.SIGTERM)
	// Past the window in which a repeat is taken for the same request.
	time.Sleep(500 * time.Millisecond)
	r.signal(syscall.SIGTERM)
	if code := r.wait(5 * time.Second); code != 137 {
		t.Errorf("exit code = %d, want 137", code)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("second SIGTERM did not skip the 30s grace: stop took %v", d)
	}
}

// TestRepeatedTermWithinMomentsIsOneStop: GNU timeout (and scripts that
// signal a process, then its group) sends SIGTERM to beatwrap and then to its
// process group, so beatwrap gets two within the same millisecond. That is
// one request to stop: the child, which takes a second to finish after TERM,
// gets its grace and exits 0. A second SIGTERM half a second later is a
// person insisting: it still kills the group at once.
func TestRepeatedTermWithinMomentsIsOneStop(t *testing.T) {
	tests := []struct {
		name     string
		apart    time.Duration // after beatwrap took the first one
		wantCode int
	}{
		{"back to back", 0, 0},
		{"500ms apart", 500 * time.Millisecond, 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two kill(2)s in a row usually reach beatwrap as one: the
			// kernel keeps one pending SIGTERM, and the second merges into
			// it. timeout's two only come apart now and then, so the second
			// is sent as soon as beatwrap has acted on the first, which is
			// what it sees when they do. A machine so loaded that this takes
			// longer than the repeat window proves nothing: run again.
			for attempt := 1; ; attempt++ {
				gap, r := termTwice(t, tt.apart)
				if tt.apart == 0 && gap > 100*time.Millisecond {
					if attempt == 3 {
						t.Skipf("the second SIGTERM left %v after the first three times: too loaded to test", gap)
					}
					t.Logf("the second SIGTERM left %v after the first; again", gap)
					continue
				}
				code := r.wait(10 * time.Second)
				if code != tt.wantCode {
					t.Errorf("exit code = %d, want %d (SIGTERMs %v apart); stderr:\n%s", code, tt.wantCode, gap, r.stderr)
				}
				second := strings.Contains(r.stderr.String(), "second stop signal")
				if want := tt.wantCode == 137; second != want {
					t.Errorf("log says \"second stop signal\": %v, want %v; stderr:\n%s", second, want, r.stderr)
				}
				return
			}
		})
	}
}

// termTwice starts beatwrap with a 30s grace and a child that takes a second
// to stop after SIGTERM, sends beatwrap SIGTERM, waits until beatwrap has
// begun the stop and apart more, and sends it another. It returns the time
// between the two.
func termTwice(t *testing.T, apart time.Duration) (time.Duration, *agentRun) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	script := fmt.Sprintf(`trap 'sleep 1; exit 0' TERM; touch %s; while :; do sleep 0.05; done`, ready)
	r := startBeatwrap(t, nil, "--grace", "30s", "--interval", "1s", "--log-format", "json", "--", "sh", "-c", script)
	testutil.Eventually(t, 10*time.Second, "the child to be ready", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	pid := r.cmd.Process.Pid
	first := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for !strings.Contains(r.stderr.String(), `"stopping agent"`) {
		select {
		case <-deadline:
			t.Fatalf("beatwrap did not begin the stop within 10s; stderr:\n%s", r.stderr)
		case <-time.After(time.Millisecond):
		}
	}
	time.Sleep(apart)
	gap := time.Since(first)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return gap, r
}

// alive reports whether pid is still a live process (not a zombie) after
// waiting up to d for it to go.
func alive(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitPIDFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(path)
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not written within 5s", path)
	return 0
}

func TestGrandchildMemoryCounts(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		testutil.Unavailable(t, "python3 not found")
	}
	url := testutil.RedisURL(t)
	bs := subscribe(t, url)
	// sh -> sh -> python3: the allocation is two levels below beatwrap's child.
	script := `sh -c 'python3 -c "import time; b = b\"x\" * (200 * 1024 * 1024); time.sleep(60)"'`
	startBeatwrap(t, nil, "--redis", url, "--namespace", bs.ns, "--id", "mem", "--interval", "200ms", "--", "sh", "-c", script)
	b := bs.next(20*time.Second, func(b wire.Beat) bool { return b.Metrics.MemoryMB >= 190 })
	if b.Metrics.Processes < 3 {
		t.Errorf("processes = %d, want the whole tree (>= 3)", b.Metrics.Processes)
	}
}

// TestRedisOutage stops Redis mid-run: the child runs on undisturbed, and
// beats resume when Redis is back.
func TestRedisOutage(t *testing.T) {
	srv := testutil.StartRedis(t)
	bs := subscribe(t, srv.URL())
	ticks := filepath.Join(t.TempDir(), "ticks")
	script := fmt.Sprintf(`i=0; while :; do i=$((i+1)); echo $i > %s; sleep 0.1; done`, ticks)
	r := startBeatwrap(t, nil, "--redis", srv.URL(), "--namespace", bs.ns, "--id", "out", "--interval", "200ms", "--", "sh", "-c", script)
	before := bs.next(10*time.Second, func(b wire.Beat) bool { return b.Status == wire.StatusHealthy })
	childPID := before.PID

	srv.Stop()
	n1 := readInt(t, ticks)
	time.Sleep(2 * time.Second)
	n2 := readInt(t, ticks)
	if n2-n1 < 10 {
		t.Errorf("child made %d ticks in 2s during the outage, want about 20: it was disturbed", n2-n1)
	}
	srv.Start()
	bs = subscribeNS(t, srv.URL(), bs.ns)
	after := bs.next(15*time.Second, func(b wire.Beat) bool { return b.Sequence > before.Sequence })
	if after.PID != childPID || after.Restarts != 0 {
		t.Errorf("after the outage pid=%d restarts=%d, want the same child %d, 0 restarts", after.PID, after.Restarts, childPID)
	}
	if n := strings.Count(r.stderr.String(), "cannot deliver beats"); n != 1 {
		t.Errorf("outage logged %d times, want once; stderr:\n%s", n, r.stderr)
	}
}

func readInt(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}

func TestBadFlagsExit2NamingTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--interval", "10ms", "--", "true"}, nil, "--interval"},
		{[]string{"--interval", "soon", "--", "true"}, nil, "--interval"},
		{[]string{"--id", "bad id!", "--", "true"}, nil, "--id"},
		{[]string{"--on-stall", "panic", "--", "true"}, nil, "--on-stall"},
		{[]string{"--restart", "sometimes", "--", "true"}, nil, `--restart must be never, on-failure or always, got "sometimes"`},
		{[]string{"--restart-limit", "-1", "--", "true"}, nil, `--restart-limit must be 0 or more, got "-1"`},
		{[]string{"--restart-window", "0s", "--", "true"}, nil, `--restart-window must be more than 0, got "0s"`},
		{[]string{"--grace", "-1s", "--", "true"}, nil, `--grace must not be negative, got "-1s"`},
		{[]string{"--orphan", "abandon", "--", "true"}, nil, `--orphan must be kill or keep, got "abandon"`},
		{[]string{"--", "true"}, []string{"BEATWRAP_ORPHAN=leave"}, `--orphan must be kill or keep, got "leave"`},
		{[]string{"--", "true"}, []string{"BEATWRAP_REPLACE=perhaps"}, "BEATWRAP_REPLACE"},
		{[]string{"--redis", "http://x", "--", "true"}, nil, "--redis"},
		{[]string{"--redis", "redis://s1:26379?master_name=m&read_only=true", "--", "true"}, nil, "--redis: redis url \"redis://s1:26379?master_name=m&read_only=true\" mixes forms"},
		{[]string{"--redis", "redis://n1:7000/2?addr=n2:7001", "--", "true"}, nil, "only db 0"},
		{[]string{"--shards", "0", "--", "true"}, nil, `--shards must be 1 to 1024, got 0`},
		{[]string{"--shards", "many", "--", "true"}, nil, "--shards"},
		{[]string{"--no-such-flag", "--", "true"}, nil, "--no-such-flag"},
		{[]string{"--degraded-memory-mb", "NaN", "--", "true"}, nil, `--degraded-memory-mb must be a number of MB, got NaN`},
		{[]string{"--degraded-memory-mb", "Inf", "--", "true"}, nil, `--degraded-memory-mb must be a number of MB, got +Inf`},
		{[]string{"--degraded-memory-mb", "-Inf", "--", "true"}, nil, "--degraded-memory-mb"},
		{[]string{"--degraded-memory-mb", "-5", "--", "true"}, nil, `--degraded-memory-mb must not be negative, got -5`},
		{[]string{"--degraded-memory-mb", "-0.5", "--", "true"}, nil, `--degraded-memory-mb must not be negative, got -0.5`},
		{[]string{"--busy-queue", "-1", "--", "true"}, nil, `--busy-queue must not be negative, got -1`},
		{[]string{"--recovering-errors", "-3", "--", "true"}, nil, `--recovering-errors must not be negative, got -3`},
		{[]string{"--", "true"}, []string{"BEATWRAP_BUSY_QUEUE=-2"}, `--busy-queue must not be negative, got -2`},
		{[]string{"--", "true"}, []string{"BEATWRAP_INTERVAL=fast"}, "BEATWRAP_INTERVAL"},
		{[]string{"--container-id", "76dda71e677f", "--", "true"}, nil, `--container-id must be the full id, 64 lowercase hex digits, got "76dda71e677f"`},
		{[]string{"--container-id", strings.Repeat("A", 64), "--", "true"}, nil, "--container-id"},
		{[]string{"--token-file", "/nonexistent/token", "--watcher", "http://127.0.0.1:1", "--", "true"}, nil, `--token-file "/nonexistent/token"`},
		{[]string{"--token-file", "/dev/null", "--watcher", "http://127.0.0.1:1", "--", "true"}, nil, `--token-file "/dev/null" is empty`},
		{[]string{"--token", "t", "--token-file", "/dev/null", "--", "true"}, nil, "--token and --token-file are exclusive"},
		{[]string{"--redis-password-file", "/nonexistent/pw", "--", "true"}, nil, `--redis-password-file "/nonexistent/pw"`},
		{[]string{"--redis", "rediss://127.0.0.1:1", "--redis-ca", "/nonexistent/ca.pem", "--", "true"}, nil, `--redis-ca "/nonexistent/ca.pem": open /nonexistent/ca.pem`},
		{[]string{"--redis", "redis://u:secret@127.0.0.1:1", "--redis-ca", "/dev/null", "--", "true"}, nil, `--redis-ca "/dev/null": tls files need a rediss:// URL, got redis://127.0.0.1:1`},
		{[]string{"--redis", "rediss://127.0.0.1:1", "--redis-cert", "/x/cert.pem", "--", "true"}, nil, `--redis-cert and --redis-key go together, got only --redis-cert "/x/cert.pem"`},
		{[]string{}, nil, "COMMAND"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append(tt.env, tt.args...), " "), func(t *testing.T) {
			r := startBeatwrap(t, tt.env, tt.args...)
			if code := r.wait(10 * time.Second); code != 2 {
				t.Fatalf("exit code = %d, want 2; stderr:\n%s", code, r.stderr)
			}
			msg := strings.TrimSpace(r.stderr.String())
			if !strings.Contains(msg, tt.want) {
				t.Errorf("stderr %q does not name %s", msg, tt.want)
			}
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("want a one-line message, got:\n%s", msg)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := startBeatwrap(t, nil, "version")
	if code := r.wait(5 * time.Second); code != 0 {
		t.Fatalf("version exit code = %d", code)
	}
	if !strings.HasPrefix(r.stdout.String(), "beatwrap ") {
		t.Errorf("version printed %q", r.stdout.String())
	}
}
