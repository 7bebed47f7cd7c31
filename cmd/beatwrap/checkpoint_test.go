package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// countLog is what the counter agent wrote: the checkpoint each of its runs
// started from, and how many times each number was done.
type countLog struct {
	starts []int
	pids   []int
	done   map[int]int
	max    int
}

func readCountLog(t *testing.T, path string) countLog {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return countLog{done: map[int]int{}}
		}
		t.Fatal(err)
	}
	defer f.Close()
	l := countLog{done: map[int]int{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var k, pid int
		line := sc.Text()
		if strings.HasPrefix(line, "start ") {
			if _, err := fmtSscan(line, &k, &pid); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			l.starts, l.pids = append(l.starts, k), append(l.pids, pid)
			continue
		}
		n, err := strconv.Atoi(line)
		if err != nil {
			continue // a line cut by a kill
		}
		l.done[n]++
		l.max = max(l.max, n)
	}
	return l
}

func fmtSscan(line string, k, pid *int) (int, error) {
	f := strings.Fields(line) // start K pid P
	if len(f) != 4 {
		return 0, strconv.ErrSyntax
	}
	var err error
	if *k, err = strconv.Atoi(f[1]); err != nil {
		return 0, err
	}
	if *pid, err = strconv.Atoi(f[3]); err != nil {
		return 0, err
	}
	return 2, nil
}

// twice lists the numbers done more than once.
func (l countLog) twice() []int {
	var out []int
	for n, c := range l.done {
		if c > 1 {
			out = append(out, n)
		}
	}
	return out
}

// checkAllDone fails unless every number 1..n was done.
func (l countLog) checkAllDone(t *testing.T, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if l.done[i] == 0 {
			t.Fatalf("%d was never done; runs started from %v", i, l.starts)
		}
	}
}

// A child killed with SIGKILL and restarted in place gets the checkpoint it
// wrote last, from beatwrap's memory, standalone: it does again only the
// number it had done and not yet checkpointed.
func TestCheckpointResumeAfterChildKill(t *testing.T) {
	counter := testutil.Binary(t, "cmd/beatwrap/testdata/counter")
	logPath := filepath.Join(t.TempDir(), "count.log")
	const n = 40
	r := startBeatwrap(t, nil, "--id", "counter", "--interval", "1s", "--restart", "on-failure",
		"--", counter, strconv.Itoa(n), "40ms", logPath)
	var first countLog
	testutil.Eventually(t, 10*time.Second, "the counter to reach 10", func() bool {
		first = readCountLog(t, logPath)
		return first.max >= 10
	})
	if err := syscall.Kill(first.pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, r.stderr)
	}
	l := readCountLog(t, logPath)
	l.checkAllDone(t, n)
	if len(l.starts) != 2 || l.starts[0] != 0 || l.starts[1] < 10 {
		t.Fatalf("runs started from %v, want 0 then at least 10 (the counter was past 10 when killed)", l.starts)
	}
	// Done twice: only what came after the last checkpoint, at most the
	// number in flight.
	if tw := l.twice(); len(tw) > 1 || len(tw) == 1 && tw[0] != l.starts[1]+1 {
		t.Errorf("done twice: %v; the second run started from %d", tw, l.starts[1])
	}
}

// beatwrap killed with SIGKILL takes its agent along; a new beatwrap with
// the same id reads the checkpoint from Redis and its agent carries on from
// there: what is done twice is what came after the last checkpoint stored.
func TestCheckpointResumeAfterBeatwrapKill(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	bs := subscribeNS(t, url, ns)
	counter := testutil.Binary(t, "cmd/beatwrap/testdata/counter")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "count.log")
	const n = 50
	args := []string{"--redis", url, "--namespace", ns, "--id", "counter", "--interval", "1s",
		"--", counter, strconv.Itoa(n), "40ms", logPath}
	env := []string{"XDG_RUNTIME_DIR=" + dir}
	first := startBeatwrap(t, env, args...)
	var l countLog
	testutil.Eventually(t, 10*time.Second, "the counter to reach 15", func() bool {
		l = readCountLog(t, logPath)
		return l.max >= 15
	})
	first.signal(syscall.SIGKILL)
	first.wait(5 * time.Second)
	testutil.Eventually(t, 5*time.Second, "the agent to die with beatwrap", func() bool {
		return syscall.Kill(l.pids[0], 0) != nil
	})
	l = readCountLog(t, logPath)
	stored := readStoredCheckpoint(t, bs, "counter")
	var cp struct{ N int }
	if err := json.Unmarshal(stored.Checkpoint, &cp); err != nil {
		t.Fatalf("stored checkpoint %s: %v", stored.Checkpoint, err)
	}
	// Written promptly: at most a gap (100ms at a 1s interval) behind,
	// that is a few 40ms steps.
	if cp.N < l.max-4 || cp.N > l.max {
		t.Errorf("stored checkpoint n=%d, the agent had done %d", cp.N, l.max)
	}

	second := startBeatwrap(t, env, args...)
	if code := second.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, second.stderr)
	}
	l2 := readCountLog(t, logPath)
	l2.checkAllDone(t, n)
	if len(l2.starts) != 2 || l2.starts[1] != cp.N {
		t.Fatalf("runs started from %v, want 0 then %d (the stored checkpoint)", l2.starts, cp.N)
	}
	for _, k := range l2.twice() {
		if k <= cp.N {
			t.Errorf("%d done twice, though checkpointed (n=%d)", k, cp.N)
		}
	}
	if got := len(l2.twice()); got != l.max-cp.N {
		t.Errorf("%d numbers done twice, want %d (from the checkpoint %d to %d)", got, l.max-cp.N, cp.N, l.max)
	}
	// The second run's last checkpoint was written before its final beat.
	bs.next(5*time.Second, func(b wire.Beat) bool { return b.Status.Final() })
	if got := readStoredCheckpoint(t, bs, "counter"); string(got.Checkpoint) != `{"n":50}` || got.Epoch != 2 {
		t.Errorf("stored after the end: %s epoch %d, want {\"n\":50} epoch 2", got.Checkpoint, got.Epoch)
	}
}

type storedCheckpoint struct {
	Epoch      int64           `json:"epoch"`
	At         int64           `json:"at"`
	Checkpoint json.RawMessage `json:"checkpoint"`
}

func readStoredCheckpoint(t *testing.T, bs *beats, id string) storedCheckpoint {
	t.Helper()
	key := bs.ns + ":agent:" + id + ":checkpoint"
	v, err := bs.raw.Get(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	var s storedCheckpoint
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		t.Fatalf("%s holds %q: %v", key, v, err)
	}
	if ttl := bs.raw.PTTL(context.Background(), key).Val(); ttl <= 0 {
		t.Errorf("%s has no TTL (%v)", key, ttl)
	}
	return s
}

// A beatwrap that another one with the same id has superseded (a container
// replaced while the old one was only cut off: here, a second beatwrap under
// another runtime folder, as on another host) cannot write its stale
// checkpoint over the new one's; it says so in its log and its beats.
func TestStaleCheckpointRefused(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	bs := subscribeNS(t, url, ns)
	reporter := testutil.Binary(t, "cmd/beatwrap/testdata/reporter")
	dir := t.TempDir()
	goOld, goNew := filepath.Join(dir, "go-old"), filepath.Join(dir, "go-new")
	common := []string{"--redis", url, "--namespace", ns, "--id", "twin", "--interval", "200ms", "--"}

	old := startBeatwrap(t, []string{"XDG_RUNTIME_DIR=" + t.TempDir()}, append(common, reporter,
		`send:{"checkpoint":{"from":"old","n":1}}`, "wait:"+goOld,
		`send:{"checkpoint":{"from":"old","n":2}}`, "sleep:30s")...)
	testutil.Eventually(t, 10*time.Second, "the old incarnation's checkpoint in Redis", func() bool {
		v, _ := bs.raw.Get(context.Background(), ns+":agent:twin:checkpoint").Result()
		return strings.Contains(v, `"from":"old"`)
	})
	out := filepath.Join(dir, "env")
	startBeatwrap(t, []string{"XDG_RUNTIME_DIR=" + t.TempDir()}, append(common, "sh", "-c",
		`printf %s "$BEATWRAP_CHECKPOINT" > `+out+` && `+testutil.Binary(t, "cmd/beatwrap")+` checkpoint --save '{"from":"new","n":1}' && touch `+goNew+` && sleep 30`)...)
	testutil.Eventually(t, 10*time.Second, "the new incarnation's checkpoint", func() bool {
		_, err := os.Stat(goNew)
		return err == nil
	})
	if got, _ := os.ReadFile(out); string(got) != `{"from":"old","n":1}` {
		t.Errorf("the new incarnation got BEATWRAP_CHECKPOINT %q, want the old one's", got)
	}
	testutil.Eventually(t, 5*time.Second, "the new checkpoint stored", func() bool {
		return strings.Contains(string(readStoredCheckpoint(t, bs, "twin").Checkpoint), `"from":"new"`)
	})
	// Now the old one, cut off until now, writes.
	if err := os.WriteFile(goOld, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sup := bs.next(10*time.Second, func(b wire.Beat) bool { return b.Superseded })
	if sup.PID != old.firstChildPID(t) {
		t.Errorf("beat of pid %d says superseded, want the old incarnation's agent", sup.PID)
	}
	if got := readStoredCheckpoint(t, bs, "twin"); string(got.Checkpoint) != `{"from":"new","n":1}` || got.Epoch != 2 {
		t.Errorf("stored: %s epoch %d, want the new incarnation's, epoch 2", got.Checkpoint, got.Epoch)
	}
	if !strings.Contains(old.stderr.String(), "superseded") {
		t.Errorf("the old beatwrap did not log that it was superseded:\n%s", old.stderr)
	}
}

// firstChildPID is the pid of the agent beatwrap started first, from its log.
func (r *agentRun) firstChildPID(t *testing.T) int {
	t.Helper()
	for _, line := range strings.Split(r.stderr.String(), "\n") {
		if !strings.Contains(line, "agent started") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "pid="); ok {
				if pid, err := strconv.Atoi(v); err == nil {
					return pid
				}
			}
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			if pid, ok := m["pid"].(float64); ok {
				return int(pid)
			}
		}
	}
	t.Fatalf("no \"agent started\" in the log:\n%s", r.stderr)
	return 0
}

// `beatwrap checkpoint` as a shell agent uses it: exit 1 while there is
// none, --save stores one, a bad value is a usage error naming the flag.
func TestCheckpointCommand(t *testing.T) {
	bin := testutil.Binary(t, "cmd/beatwrap")
	script := `B=` + bin + `
$B checkpoint; echo "rc=$?"
$B checkpoint --save '{"a": [1, 2]}'; echo "rc=$?"
$B checkpoint; echo "rc=$?"
$B checkpoint --save 'not json'; echo "rc=$?"
$B checkpoint --save null; $B checkpoint; echo "rc=$?"`
	r := startBeatwrap(t, nil, "--id", "shell", "--interval", "1s", "--", "sh", "-c", script)
	if code := r.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	want := "rc=1\nrc=0\n{\"a\":[1,2]}\nrc=0\nrc=2\nrc=1\n"
	if got := r.stdout.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
	for _, msg := range []string{"beatwrap: no checkpoint", `--save must be a JSON value`} {
		if !strings.Contains(r.stderr.String(), msg) {
			t.Errorf("stderr lacks %q:\n%s", msg, r.stderr)
		}
	}
}
