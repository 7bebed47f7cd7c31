package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// These tests drive the progress socket, stall detection and restarts of the
// real beatwrap binary, and watch the beats it sends to a real Redis. Stall
// timeouts are 1s and intervals 200ms so that each test takes seconds.

// shortDir is a fresh folder with a short path: a unix socket path must fit
// in 107 bytes, and t.TempDir embeds the test's name.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// beatArgs starts a beatwrap command line that beats every 200ms into the
// subscriber's namespace as agent id, with its progress socket at sock.
func beatArgs(url string, bs *beats, id, sock string, more ...string) []string {
	return append([]string{"--redis", url, "--namespace", bs.ns, "--id", id, "--interval", "200ms", "--socket", sock}, more...)
}

// drain drops the beats received so far.
func (b *beats) drain() {
	for {
		select {
		case <-b.sub.Channel():
		default:
			return
		}
	}
}

// during returns every beat that arrives within d.
func (b *beats) during(d time.Duration) []wire.Beat {
	b.t.Helper()
	var got []wire.Beat
	deadline := time.After(d)
	for {
		select {
		case msg := <-b.sub.Channel():
			beat, err := wire.ParseBeat([]byte(msg.Payload))
			if err != nil {
				b.t.Fatalf("beat on the channel does not parse: %v: %s", err, msg.Payload)
			}
			got = append(got, beat)
		case <-deadline:
			return got
		}
	}
}

// sockConn is a test's own connection to beatwrap's progress socket.
type sockConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialSocket connects to the progress socket, waiting for beatwrap to open it.
func dialSocket(t *testing.T, path string) *sockConn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return &sockConn{t: t, c: c, r: bufio.NewReader(c)}
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress socket %s not open within 10s: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// send writes one line and returns the reply.
func (s *sockConn) send(line string) sockline.Reply {
	s.t.Helper()
	reply, err := roundTrip(s.c, s.r, line)
	if err != nil {
		s.t.Fatal(err)
	}
	return reply
}

// roundTrip writes line and a newline on c and reads one reply from r.
func roundTrip(c net.Conn, r *bufio.Reader, line string) (sockline.Reply, error) {
	var reply sockline.Reply
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return reply, fmt.Errorf("write %.40q: %w", line, err)
	}
	b, err := r.ReadBytes('\n')
	if err != nil {
		return reply, fmt.Errorf("read reply to %.40q: %w", line, err)
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return reply, fmt.Errorf("reply %q is not JSON: %w", b, err)
	}
	return reply, nil
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stampMs reads a time a child wrote with `date +%s%3N`, waiting for it.
func stampMs(t *testing.T, path string) int64 {
	t.Helper()
	return int64(waitPIDFile(t, path))
}

func progressOf(b wire.Beat) float64 {
	if b.TaskProgress == nil {
		return -1
	}
	return *b.TaskProgress
}

// TestReportsChangeTheNextBeat sends reports the two ways an agent can, a
// program speaking the socket itself and a shell script calling `beatwrap
// report`, and checks that each set of reports shows in the beats: the
// replaced values, the tokens and errors added up, and the status they lead
// to (busy above --busy-queue, recovering above --recovering-errors).
func TestReportsChangeTheNextBeat(t *testing.T) {
	url := testutil.RedisURL(t)
	bin := testutil.Binary(t, "cmd/beatwrap")
	reporter := testutil.Binary(t, "cmd/beatwrap/testdata/reporter")
	tests := []struct {
		name string
		argv func(dir string) []string
	}{
		{"socket", func(dir string) []string {
			return []string{reporter,
				`send:{"task":"summarise ticket 4312","progress":40,"activeTasks":1,"queueDepth":3,"tokens":1850}`,
				`send:{"tokens":150}`,
				"wait:" + dir + "/2",
				`send:{"queueDepth":7,"progress":80}`,
				"wait:" + dir + "/3",
				`send:{"error":"rate limited"}`, `send:{"error":"rate limited"}`, `send:{"error":"timeout"}`,
				"sleep:60s",
			}
		}},
		{"beatwrap report", func(dir string) []string {
			script := fmt.Sprintf(`set -e
[ "$BEATWRAP_AGENT_ID" = rep ] || { echo "BEATWRAP_AGENT_ID=$BEATWRAP_AGENT_ID" >&2; exit 9; }
bw=%q; dir=%q
$bw report --task "summarise ticket 4312" --progress 40 --active 1 --queue 3 --tokens 1850
$bw report --tokens 150
while [ ! -e $dir/2 ]; do sleep 0.02; done
$bw report --queue 7 --progress 80
while [ ! -e $dir/3 ]; do sleep 0.02; done
$bw report --error "rate limited"; $bw report --error "rate limited"; $bw report --error timeout
exec sleep 60`, bin, dir)
			return []string{"sh", "-c", script}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shortDir(t)
			bs := subscribe(t, url)
			args := beatArgs(url, bs, "rep", filepath.Join(dir, "s.sock"), "--busy-queue", "5", "--recovering-errors", "2", "--")
			r := startBeatwrap(t, nil, append(args, tt.argv(dir)...)...)

			got := bs.next(10*time.Second, func(b wire.Beat) bool { return b.Metrics.TokensUsedThisHour == 2000 })
			if got.CurrentTask != "summarise ticket 4312" || progressOf(got) != 40 || got.Metrics.ActiveTasks != 1 ||
				got.Metrics.QueueDepth != 3 || got.Metrics.ErrorsLast5Min != 0 || got.Status != wire.StatusHealthy {
				t.Fatalf("after the first reports: %s, want task, progress 40, 1 active, queue 3, 2000 tokens, healthy", describe(got))
			}

			touch(t, filepath.Join(dir, "2"))
			got = bs.next(5*time.Second, func(b wire.Beat) bool { return b.Metrics.QueueDepth == 7 })
			if got.Status != wire.StatusBusy || progressOf(got) != 80 || got.CurrentTask != "summarise ticket 4312" ||
				got.Metrics.TokensUsedThisHour != 2000 {
				t.Fatalf("after queue 7: %s, want busy, progress 80, the same task and tokens", describe(got))
			}

			touch(t, filepath.Join(dir, "3"))
			got = bs.next(5*time.Second, func(b wire.Beat) bool { return b.Metrics.ErrorsLast5Min == 3 })
			if got.Status != wire.StatusRecovering || got.Metrics.QueueDepth != 7 {
				t.Fatalf("after 3 errors: %s, want recovering (it comes before busy), queue still 7", describe(got))
			}
			r.signal(syscall.SIGTERM)
			if code := r.wait(10 * time.Second); code != 143 {
				t.Errorf("exit code = %d, want 143; stderr:\n%s", code, r.stderr)
			}
		})
	}
}

func describe(b wire.Beat) string {
	return fmt.Sprintf("status=%s task=%q progress=%v active=%d queue=%d tokens=%d errors=%d restarts=%d pid=%d stallReason=%q",
		b.Status, b.CurrentTask, progressOf(b), b.Metrics.ActiveTasks, b.Metrics.QueueDepth,
		b.Metrics.TokensUsedThisHour, b.Metrics.ErrorsLast5Min, b.Restarts, b.PID, b.StallReason)
}

// TestBadLinesAnsweredConnectionKeepsWorking writes bad lines on one
// connection to the real socket: each gets ok:false naming the problem,
// none changes anything, and the same connection is still served after them.
func TestBadLinesAnsweredConnectionKeepsWorking(t *testing.T) {
	url := testutil.RedisURL(t)
	bs := subscribe(t, url)
	sock := filepath.Join(shortDir(t), "s.sock")
	startBeatwrap(t, nil, append(beatArgs(url, bs, "bad", sock, "--"), "sleep", "60")...)
	c := dialSocket(t, sock)
	if reply := c.send(`{"task":"before","progress":10,"tokens":5}`); !reply.OK {
		t.Fatalf("good line rejected: %s", reply.Error)
	}

	bad := []struct {
		name, line, want string
	}{
		{"not JSON", "hello", "not a JSON object"},
		{"truncated JSON", `{"task":`, "not a JSON object"},
		{"an array", `[1,2,3]`, "not a JSON object"},
		{"progress a string", `{"progress":"high"}`, "progress"},
		{"progress 150", `{"progress":150}`, "progress"},
		{"task a number", `{"task":42}`, "task"},
		{"negative tokens", `{"tokens":-5}`, "tokens"},
		{"fractional activeTasks", `{"activeTasks":1.5}`, "activeTasks"},
		{"idle a string", `{"idle":"yes"}`, "idle"},
		{"quietFor not a duration", `{"quietFor":"soon"}`, "quietFor"},
		{"quietFor a number", `{"quietFor":5}`, `quietFor must be a duration string such as "20m", got 5`},
		{"empty line", "", "empty line"},
		{"blank line", "  \t", "empty line"},
		{"one bad field among good ones", `{"task":"evil","tokens":100,"progress":150}`, "progress"},
		{"100 KiB line", `{"task":"` + strings.Repeat("x", 100<<10) + `"}`, "longer than"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			reply := c.send(tt.line)
			if reply.OK || !strings.Contains(reply.Error, tt.want) {
				t.Errorf("reply = %+v, want ok:false with an error naming %q", reply, tt.want)
			}
		})
	}

	if reply := c.send(`{"queueDepth":2}`); !reply.OK {
		t.Fatalf("good line after the bad ones rejected on the same connection: %s", reply.Error)
	}
	got := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Metrics.QueueDepth == 2 })
	if got.CurrentTask != "before" || progressOf(got) != 10 || got.Metrics.TokensUsedThisHour != 5 {
		t.Errorf("after the bad lines: %s, want task \"before\", progress 10, 5 tokens: a bad line changed something", describe(got))
	}
}

// TestFiftyConcurrentClients has 50 clients report at once, half on one
// connection each, half connecting per report; every report is answered and
// every token counted.
func TestFiftyConcurrentClients(t *testing.T) {
	const clients, reports = 50, 20
	url := testutil.RedisURL(t)
	bs := subscribe(t, url)
	sock := filepath.Join(shortDir(t), "s.sock")
	startBeatwrap(t, nil, append(beatArgs(url, bs, "fifty", sock, "--"), "sleep", "60")...)
	dialSocket(t, sock)

	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- client(sock, i, reports, i%2 == 0)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Metrics.TokensUsedThisHour >= clients*reports })
	if got.Metrics.TokensUsedThisHour != clients*reports {
		t.Errorf("tokens = %d, want %d", got.Metrics.TokensUsedThisHour, clients*reports)
	}
	if !strings.HasPrefix(got.CurrentTask, "client ") {
		t.Errorf("task = %q, want one of the clients'", got.CurrentTask)
	}
}

// client sends n reports of one token each, on one connection when keep is
// set, else on a connection per report.
func client(sock string, id, n int, keep bool) error {
	var c net.Conn
	var r *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for j := range n {
		if c == nil {
			var err error
			if c, err = net.Dial("unix", sock); err != nil {
				return fmt.Errorf("client %d: %w", id, err)
			}
			r = bufio.NewReader(c)
		}
		reply, err := roundTrip(c, r, fmt.Sprintf(`{"task":"client %d","progress":%d,"tokens":1}`, id, j*100/n))
		if err != nil {
			return fmt.Errorf("client %d: %w", id, err)
		}
		if !reply.OK {
			return fmt.Errorf("client %d: rejected: %s", id, reply.Error)
		}
		if !keep {
			c.Close()
			c = nil
		}
	}
	return nil
}

// reportOnceScript is a shell child that reports work once, writing the
// time just before the report to dir/before, and then sleeps.
func reportOnceScript(bin, dir, flags string) string {
	return fmt.Sprintf(`date +%%s%%3N > %[2]s/before
%[1]s report %[3]s || exit 9
exec sleep 60`, bin, dir, flags)
}

// TestStalledWithinTimeoutPlusInterval: a child that reports once and then
// sleeps beats stalled, with a reason, between the stall timeout and the
// timeout plus one interval after its report (with slack for a loaded
// machine); a report afterwards makes it healthy again.
func TestStalledWithinTimeoutPlusInterval(t *testing.T) {
	const timeout, interval, slack = time.Second, 200 * time.Millisecond, 600 * time.Millisecond
	url := testutil.RedisURL(t)
	bin := testutil.Binary(t, "cmd/beatwrap")
	bs := subscribe(t, url)
	dir := shortDir(t)
	script := fmt.Sprintf(`date +%%s%%3N > %[2]s/before
%[1]s report --task "call the model" --progress 30 --active 1 || exit 9
while [ ! -e %[2]s/again ]; do sleep 0.02; done
%[1]s report --progress 60 || exit 9
exec sleep 60`, bin, dir)
	startBeatwrap(t, nil, append(beatArgs(url, bs, "stall", filepath.Join(dir, "s.sock"), "--stall-timeout", "1s", "--"), "sh", "-c", script)...)

	stalled := bs.next(10*time.Second, func(b wire.Beat) bool { return b.Status == wire.StatusStalled })
	before := stampMs(t, filepath.Join(dir, "before"))
	took := time.Duration(stalled.Timestamp-before) * time.Millisecond
	if took < timeout || took > timeout+interval+slack {
		t.Errorf("stalled %v after the report, want between %v and %v (+%v slack)", took, timeout, timeout+interval, slack)
	}
	if !strings.Contains(stalled.StallReason, "no progress for") || !strings.Contains(stalled.StallReason, `"call the model"`) {
		t.Errorf("stallReason = %q, want how long since which report", stalled.StallReason)
	}

	touch(t, filepath.Join(dir, "again"))
	got := bs.next(5*time.Second, func(b wire.Beat) bool { return progressOf(b) == 60 })
	if got.Status != wire.StatusHealthy || got.StallReason != "" {
		t.Errorf("after a new report: %s, want healthy without a stall reason", describe(got))
	}
}

// TestQuietForHoldsTheStallOff: quietFor 2s with a 1s stall timeout puts the
// stall off until 2s after the report, not forever.
func TestQuietForHoldsTheStallOff(t *testing.T) {
	const quiet, interval, slack = 2 * time.Second, 200 * time.Millisecond, 600 * time.Millisecond
	url := testutil.RedisURL(t)
	bin := testutil.Binary(t, "cmd/beatwrap")
	bs := subscribe(t, url)
	dir := shortDir(t)
	script := reportOnceScript(bin, dir, `--task "long tool call" --active 1 --quiet-for 2s`)
	startBeatwrap(t, nil, append(beatArgs(url, bs, "quiet", filepath.Join(dir, "s.sock"), "--stall-timeout", "1s", "--"), "sh", "-c", script)...)

	stalled := bs.next(10*time.Second, func(b wire.Beat) bool { return b.Status == wire.StatusStalled })
	took := time.Duration(stalled.Timestamp-stampMs(t, filepath.Join(dir, "before"))) * time.Millisecond
	if took < quiet || took > quiet+interval+slack {
		t.Errorf("stalled %v after a report with quietFor %v and a 1s stall timeout, want between %v and %v (+%v slack)",
			took, quiet, quiet, quiet+interval, slack)
	}
}

// TestIdleHoldsTheStallOff: an idle agent is not stalled however long it is
// silent; once it reports work again the stall clock runs.
func TestIdleHoldsTheStallOff(t *testing.T) {
	url := testutil.RedisURL(t)
	bin := testutil.Binary(t, "cmd/beatwrap")
	bs := subscribe(t, url)
	dir := shortDir(t)
	script := fmt.Sprintf(`%[1]s report --idle || exit 9
while [ ! -e %[2]s/work ]; do sleep 0.02; done
date +%%s%%3N > %[2]s/before
%[1]s report --task "new ticket" --active 1 || exit 9
exec sleep 60`, bin, dir)
	startBeatwrap(t, nil, append(beatArgs(url, bs, "idle", filepath.Join(dir, "s.sock"), "--stall-timeout", "1s", "--"), "sh", "-c", script)...)

	bs.next(10*time.Second, func(b wire.Beat) bool { return b.Status == wire.StatusHealthy })
	seen := bs.during(2500 * time.Millisecond)
	if len(seen) < 5 {
		t.Fatalf("%d beats in 2.5s at a 200ms interval", len(seen))
	}
	for _, b := range seen {
		if b.Status != wire.StatusHealthy {
			t.Fatalf("idle agent beat %s, want healthy throughout", describe(b))
		}
	}

	touch(t, filepath.Join(dir, "work"))
	stalled := bs.next(10*time.Second, func(b wire.Beat) bool { return b.Status == wire.StatusStalled })
	took := time.Duration(stalled.Timestamp-stampMs(t, filepath.Join(dir, "before"))) * time.Millisecond
	if stalled.CurrentTask != "new ticket" || took < time.Second || took > 1800*time.Millisecond {
		t.Errorf("after work came: %s, %v after the report; want stalled on \"new ticket\" 1-1.2s (+600ms slack) after it", describe(stalled), took)
	}
}

// TestPrintingChildIsNotStalled: without socket reports, output is progress.
// A child printing every 200ms is never stalled over four stall timeouts, a
// Python child too although it does not flush (beatwrap sets
// PYTHONUNBUFFERED), and its output passes through. The last case shows the
// test can fail: with PYTHONUNBUFFERED set empty by the user, which beatwrap
// respects, Python buffers and the agent is called stalled.
func TestPrintingChildIsNotStalled(t *testing.T) {
	url := testutil.RedisURL(t)
	python := `import time
while True:
    print("tick")
    time.sleep(0.2)`
	tests := []struct {
		name        string
		env         []string
		argv        []string
		python      bool
		wantStalled bool
	}{
		{"shell", nil, []string{"sh", "-c", "while :; do echo tick; sleep 0.2; done"}, false, false},
		{"python without flush", []string{"PYTHONUNBUFFERED"}, []string{"python3", "-c", python}, true, false},
		{"python with PYTHONUNBUFFERED set empty", []string{"PYTHONUNBUFFERED="}, []string{"python3", "-c", python}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := exec.LookPath("python3"); tt.python && err != nil {
				testutil.Unavailable(t, "python3 not found")
			}
			bs := subscribe(t, url)
			args := beatArgs(url, bs, "print", filepath.Join(shortDir(t), "s.sock"), "--stall-timeout", "1s", "--")
			r := startBeatwrap(t, tt.env, append(args, tt.argv...)...)
			if !tt.wantStalled {
				// The stall clock runs from the child's start, and a loaded
				// machine can take longer than the stall timeout to start
				// python: judge the beats from the first tick on, skipping
				// the stalled ones sent before it (the sender may deliver
				// them late), up to the first healthy beat.
				testutil.Eventually(t, 30*time.Second, "the child's first tick", func() bool {
					return strings.Contains(r.stdout.String(), "tick\n")
				})
				bs.drain() // a healthy beat from before the stall is no sign
				bs.next(10*time.Second, func(b wire.Beat) bool { return b.Status == wire.StatusHealthy })
			}
			seen := bs.during(4 * time.Second)
			if len(seen) < 10 {
				t.Fatalf("%d beats in 4s at a 200ms interval", len(seen))
			}
			stalled := 0
			for _, b := range seen {
				if b.Status == wire.StatusStalled {
					stalled++
				}
			}
			if tt.wantStalled {
				if stalled == 0 {
					t.Errorf("no stalled beat from a child whose output is buffered: the test cannot tell")
				}
				return
			}
			if stalled > 0 {
				t.Errorf("%d of %d beats stalled for a child printing every 200ms", stalled, len(seen))
			}
			r.signal(syscall.SIGTERM)
			r.wait(10 * time.Second)
			if n := strings.Count(r.stdout.String(), "tick\n"); n < 10 {
				t.Errorf("%d ticks passed through to stdout in 4s, want about 20", n)
			}
		})
	}
}

// TestOnStallRestart: --on-stall restart kills the stalled child and starts
// it again at once, the beat counts the restart, and at --restart-limit
// beatwrap gives up with the child's code and a final exited beat.
func TestOnStallRestart(t *testing.T) {
	url := testutil.RedisURL(t)
	bin := testutil.Binary(t, "cmd/beatwrap")
	bs := subscribe(t, url)
	dir := shortDir(t)
	script := fmt.Sprintf(`echo start >> %s/starts
%s report --task work --active 1 || exit 9
exec sleep 60`, dir, bin)
	args := beatArgs(url, bs, "restart", filepath.Join(dir, "s.sock"),
		"--stall-timeout", "1s", "--on-stall", "restart", "--restart-limit", "1", "--grace", "1s", "--")
	r := startBeatwrap(t, nil, append(args, "sh", "-c", script)...)

	first := bs.next(10*time.Second, func(b wire.Beat) bool { return b.CurrentTask == "work" })
	if first.Restarts != 0 {
		t.Fatalf("first run: %s, want 0 restarts", describe(first))
	}
	again := bs.next(10*time.Second, func(b wire.Beat) bool { return b.Restarts == 1 && b.CurrentTask == "work" })
	if again.PID == first.PID || again.Status != wire.StatusHealthy {
		t.Errorf("after the stall restart: %s, want a new healthy child (the first was pid %d)", describe(again), first.PID)
	}
	code := r.wait(15 * time.Second)
	if code != 143 {
		t.Errorf("exit code after the second stall with --restart-limit 1 = %d, want 143 (the child's, killed by SIGTERM)", code)
	}
	final := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Status.Final() })
	if final.Status != wire.StatusExited || final.Restarts != 1 || final.ExitCode == nil || *final.ExitCode != code {
		t.Errorf("final beat %s exitCode=%v, want exited with 1 restart and exitCode %d", describe(final), final.ExitCode, code)
	}
	if n := strings.Count(readFile(t, filepath.Join(dir, "starts")), "start"); n != 2 {
		t.Errorf("child started %d times, want 2", n)
	}
}

// TestOnStallRestartBeatsAtOnce: the restarted child's first beat goes out
// as soon as it starts, not at the next interval (5s here), so a watcher
// that saw the agent stalled sees it back before it recovers the agent a
// second time; and every beat says what beatwrap does about a stall.
func TestOnStallRestartBeatsAtOnce(t *testing.T) {
	url := testutil.RedisURL(t)
	bin := testutil.Binary(t, "cmd/beatwrap")
	bs := subscribe(t, url)
	dir := shortDir(t)
	script := fmt.Sprintf(`%s report --task work --active 1 || exit 9
exec sleep 60`, bin)
	args := []string{"--redis", url, "--namespace", bs.ns, "--id", "again", "--interval", "5s",
		"--socket", filepath.Join(dir, "s.sock"), "--stall-timeout", "1s", "--on-stall", "restart", "--grace", "1s", "--"}
	startBeatwrap(t, nil, append(args, "sh", "-c", script)...)

	stalled := bs.next(10*time.Second, func(b wire.Beat) bool { return b.Status == wire.StatusStalled })
	if stalled.OnStall != "restart" {
		t.Errorf("stalled beat onStall = %q, want restart", stalled.OnStall)
	}
	back := bs.next(10*time.Second, func(b wire.Beat) bool { return b.Restarts == 1 })
	if took := time.Duration(back.Timestamp-stalled.Timestamp) * time.Millisecond; took > 2*time.Second {
		t.Errorf("first beat of the restarted child came %v after the stalled one, want at once, not at the next 5s interval", took)
	}
	if back.Status == wire.StatusStalled || back.Status.Final() || back.PID == stalled.PID || back.OnStall != "restart" {
		t.Errorf("first beat after the restart: %s onStall=%q, want a new child, not stalled, onStall restart", describe(back), back.OnStall)
	}
}

// TestOnStallRestartGivesUpAsFailure: an agent that beatwrap stops restarting
// at --restart-limit ends as a failure even when it honours SIGTERM with 0:
// a final exited beat with exitCode 1, and exit code 1.
func TestOnStallRestartGivesUpAsFailure(t *testing.T) {
	url := testutil.RedisURL(t)
	bin := testutil.Binary(t, "cmd/beatwrap")
	bs := subscribe(t, url)
	dir := shortDir(t)
	script := fmt.Sprintf(`trap 'exit 0' TERM
%s report --task work --active 1 || exit 9
sleep 60 & wait`, bin)
	args := beatArgs(url, bs, "giveup", filepath.Join(dir, "s.sock"),
		"--stall-timeout", "1s", "--on-stall", "restart", "--restart-limit", "0", "--grace", "2s", "--")
	r := startBeatwrap(t, nil, append(args, "sh", "-c", script)...)
	if code := r.wait(10 * time.Second); code != 1 {
		t.Errorf("exit code = %d, want 1 (a stalled agent given up on, although it exited 0); stderr:\n%s", code, r.stderr)
	}
	final := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Status.Final() })
	if final.Status != wire.StatusExited || final.ExitCode == nil || *final.ExitCode != 1 {
		t.Errorf("final beat %s exitCode=%v, want exited with exitCode 1", describe(final), final.ExitCode)
	}
}

// TestOnStallExit: --on-stall exit stops the stalled child and exits
// non-zero, even when the child honours SIGTERM with 0, after a final exited
// beat, so the container or beatwatch takes over.
func TestOnStallExit(t *testing.T) {
	url := testutil.RedisURL(t)
	bin := testutil.Binary(t, "cmd/beatwrap")
	tests := []struct {
		name, trap string
		want       int
	}{
		{"child dies of SIGTERM", "", 143},
		{"child exits 0 on SIGTERM", "trap 'exit 0' TERM", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := subscribe(t, url)
			dir := shortDir(t)
			script := fmt.Sprintf(`%s
%s report --task work --active 1 || exit 9
sleep 60 & wait`, tt.trap, bin)
			args := beatArgs(url, bs, "exit", filepath.Join(dir, "s.sock"), "--stall-timeout", "1s", "--on-stall", "exit", "--grace", "2s", "--")
			start := time.Now()
			r := startBeatwrap(t, nil, append(args, "sh", "-c", script)...)
			code := r.wait(10 * time.Second)
			if code != tt.want {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.want, r.stderr)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("exited %v after start, want soon after the 1s stall timeout", d)
			}
			final := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Status.Final() })
			if final.Status != wire.StatusExited || final.ExitCode == nil || *final.ExitCode != tt.want {
				t.Errorf("final beat %s exitCode=%v, want exited with exitCode %d", describe(final), final.ExitCode, tt.want)
			}
		})
	}
}

// TestRestartOnFailure: a failing child is restarted with backoff (1s, then
// 2s, less up to a fifth of jitter) until --restart-limit, then beatwrap
// exits with the child's code; exit 0 is not a failure; a child that beatwrap
// itself stopped with SIGTERM is never restarted, even with --restart always.
func TestRestartOnFailure(t *testing.T) {
	url := testutil.RedisURL(t)
	tests := []struct {
		name      string
		restart   string
		exit      string // the child's last command
		term      bool   // send beatwrap SIGTERM once the child runs
		wantCode  int
		wantRuns  int
		wantFinal wire.Status
		minTook   time.Duration
	}{
		{"gives up at the limit", "on-failure", "exit 3", false, 3, 3, wire.StatusExited, 2400 * time.Millisecond},
		{"exit 0 is no failure", "on-failure", "exit 0", false, 0, 1, wire.StatusStopped, 0},
		{"our SIGTERM is never restarted", "always", "exec sleep 60", true, 143, 1, wire.StatusStopped, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := subscribe(t, url)
			dir := shortDir(t)
			runs := filepath.Join(dir, "runs")
			args := beatArgs(url, bs, "crash", filepath.Join(dir, "s.sock"), "--restart", tt.restart, "--restart-limit", "2", "--")
			start := time.Now()
			r := startBeatwrap(t, nil, append(args, "sh", "-c", fmt.Sprintf("echo run >> %s; %s", runs, tt.exit))...)
			if tt.term {
				waitFile(t, runs)
				r.signal(syscall.SIGTERM)
			}
			code := r.wait(15 * time.Second)
			took := time.Since(start)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, r.stderr)
			}
			if took < tt.minTook {
				t.Errorf("ended after %v, want at least %v of backoff", took, tt.minTook)
			}
			if n := strings.Count(readFile(t, runs), "run"); n != tt.wantRuns {
				t.Errorf("child ran %d times, want %d", n, tt.wantRuns)
			}
			final := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Status.Final() })
			if final.Status != tt.wantFinal || final.Restarts != tt.wantRuns-1 {
				t.Errorf("final beat %s, want %s with %d restarts", describe(final), tt.wantFinal, tt.wantRuns-1)
			}
			if tt.wantFinal == wire.StatusExited && (final.ExitCode == nil || *final.ExitCode != tt.wantCode) {
				t.Errorf("final beat exitCode = %v, want %d", final.ExitCode, tt.wantCode)
			}
		})
	}
}

// waitFile waits for path to exist.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not there within 10s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
