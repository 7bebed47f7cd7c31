package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// treeScript is an agent with a child and a grandchild, all in the agent's
// process group; each writes its pid to a file in $TREE.
const treeScript = `sh -c 'sleep 300 & echo $! > "$TREE/grandchild"; wait' &
echo $! > "$TREE/child"
echo $$ > "$TREE/agent"
wait`

// proc is a process as the test saw it start: its pid and its start time,
// so that a pid given to a new process is not taken for the old one.
type proc struct {
	name  string
	pid   int
	start string
}

// procStart returns pid's start time, and false when pid is gone or a
// zombie (the test's PID 1 may not reap the orphans it is given).
func procStart(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(string(b[i+1:])) // state is field 3 of proc(5), starttime 22
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return "", false
	}
	return f[19], true
}

func (p proc) live() bool {
	start, ok := procStart(p.pid)
	return ok && start == p.start
}

// waitTree waits for the agent of treeScript to have written every pid.
func waitTree(t *testing.T, dir string) []proc {
	t.Helper()
	var tree []proc
	for _, name := range []string{"agent", "child", "grandchild"} {
		pid := waitPIDFile(t, filepath.Join(dir, name))
		start, ok := procStart(pid)
		if !ok {
			t.Fatalf("%s %d is not running", name, pid)
		}
		tree = append(tree, proc{name, pid, start})
	}
	return tree
}

// killTreeAtEnd kills what is left of the tree when the test ends.
func killTreeAtEnd(t *testing.T, tree []proc) {
	t.Cleanup(func() {
		for _, p := range tree {
			if p.live() {
				syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
	})
}

// waitTreeGone waits until no process of tree runs, up to within after
// since, and returns how long after since that was.
func waitTreeGone(t *testing.T, tree []proc, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	for {
		var left []string
		for _, p := range tree {
			if p.live() {
				left = append(left, fmt.Sprintf("%s %d", p.name, p.pid))
			}
		}
		took := time.Since(since)
		if len(left) == 0 {
			return took
		}
		if took > within {
			t.Fatalf("%s still running %v after beatwrap was killed, want all gone within %v", strings.Join(left, ", "), took.Round(time.Millisecond), within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watchdogOf returns the pid of the orphan watchdog beatwrap ppid runs,
// failing the test if none appears within 5s.
func watchdogOf(t *testing.T, ppid, not int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, path := range paths {
			cmdline, err := os.ReadFile(path)
			if err != nil || !bytes.HasPrefix(cmdline, []byte("beatwrap-watchdog\x00")) {
				continue
			}
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			stat, err := os.ReadFile(filepath.Join(filepath.Dir(path), "stat"))
			if err != nil || pid == not {
				continue
			}
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			if len(f) > 1 && f[0] != "Z" && f[1] == strconv.Itoa(ppid) {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("beatwrap %d runs no orphan watchdog", ppid)
	return 0
}

// TestSIGKILLEndsTheAgentTree kills the real beatwrap with SIGKILL: the
// agent, its child and its grandchild must all be gone within a second.
func TestSIGKILLEndsTheAgentTree(t *testing.T) {
	tests := []struct {
		name         string
		flags        []string
		killWatchdog bool   // kill the watchdog first: beatwrap must start another
		before       string // shell run before treeScript
	}{
		{name: "default"},
		{name: "subreaper", flags: []string{"--subreaper"}},
		{name: "watchdog killed before", killWatchdog: true},
		{
			// The watchdog must be told of the new process group.
			name:   "agent restarted in place",
			flags:  []string{"--restart", "on-failure"},
			before: `[ -e "$TREE/ran" ] || { touch "$TREE/ran"; exit 1; }` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"--id", "orphan-kill", "--interval", "1s"}, tt.flags...)
			r := startBeatwrap(t, []string{"TREE=" + dir}, append(args, "--", "sh", "-c", tt.before+treeScript)...)
			tree := waitTree(t, dir)
			killTreeAtEnd(t, tree)
			bw := r.Cmd.Process.Pid
			if tt.killWatchdog {
				first := watchdogOf(t, bw, 0)
				syscall.Kill(first, syscall.SIGKILL)
				watchdogOf(t, bw, first)
			}

			killed := time.Now()
			r.signal(syscall.SIGKILL)
			took := waitTreeGone(t, tree, killed, time.Second)
			t.Logf("agent, child and grandchild gone %v after SIGKILL", took.Round(time.Millisecond))
			if code := r.wait(5 * time.Second); code != -1 {
				t.Errorf("beatwrap exit code = %d, want -1 (killed)", code)
			}
		})
	}
}

// TestOrphanKeep: with --orphan keep the agent outlives a killed beatwrap; a
// second beatwrap with the same id refuses to start beside it, and one with
// --replace stops it and takes over.
func TestOrphanKeep(t *testing.T) {
	dir := t.TempDir()
	env := []string{"TREE=" + dir, "XDG_RUNTIME_DIR=" + t.TempDir()}
	first := startBeatwrap(t, env, "--id", "kept", "--orphan", "keep", "--grace", "300ms", "--interval", "1s", "--", "sh", "-c", treeScript)
	tree := waitTree(t, dir)
	killTreeAtEnd(t, tree)
	first.signal(syscall.SIGKILL)
	first.wait(5 * time.Second)

	// Twice the time in which --orphan kill ends them.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, p := range tree {
			if !p.live() {
				t.Fatalf("%s %d ended after beatwrap was killed with --orphan keep", p.name, p.pid)
			}
		}
	}

	second := startBeatwrap(t, env, "--id", "kept", "--", "sh", "-c", `touch "$TREE/second"`)
	if code := second.wait(10 * time.Second); code != 1 {
		t.Fatalf("second beatwrap with the same id: exit code = %d, want 1; stderr:\n%s", code, second.stderr)
	}
	msg := second.stderr.String()
	for _, want := range []string{fmt.Sprintf(`agent id "kept" already runs on this host: agent pid %d outlived its beatwrap (--orphan keep); stop it, or pass --replace to take over`, tree[0].pid)} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal does not say %q:\n%s", want, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "second")); err == nil {
		t.Error("the refused beatwrap started its agent")
	}
	for _, p := range tree {
		if !p.live() {
			t.Errorf("%s %d ended when a second beatwrap was refused", p.name, p.pid)
		}
	}

	third := startBeatwrap(t, env, "--id", "kept", "--replace", "--interval", "1s", "--",
		"sh", "-c", `echo $$ > "$TREE/third"; exec sleep 300`)
	newPID := waitPIDFile(t, filepath.Join(dir, "third"))
	// The old tree was ended before the new agent started.
	for _, p := range tree {
		if p.live() {
			t.Errorf("%s %d still runs beside the agent of --replace", p.name, p.pid)
		}
	}
	if !alive(newPID, 0) {
		t.Errorf("the agent of --replace (%d) is not running", newPID)
	}
	if !strings.Contains(third.stderr.String(), "left it running: stopping it to take over") {
		t.Errorf("--replace did not log what it stopped:\n%s", third.stderr)
	}
	third.signal(syscall.SIGTERM)
	third.wait(10 * time.Second)
}

// TestSameIDRefusedThenReplaced: while a beatwrap runs agent "twin", a second
// one with the same id exits 1 without starting anything; one with
// --replace makes the first run its stop sequence (its final beat goes out
// first) and takes over.
func TestSameIDRefusedThenReplaced(t *testing.T) {
	url := testutil.RedisURL(t)
	bs := subscribe(t, url)
	dir := t.TempDir()
	env := []string{"D=" + dir, "XDG_RUNTIME_DIR=" + t.TempDir()}
	args := func(more ...string) []string {
		return append([]string{"--redis", url, "--namespace", bs.ns, "--id", "twin", "--interval", "200ms", "--grace", "2s"}, more...)
	}
	first := startBeatwrap(t, env, args("--", "sh", "-c", `echo $$ > "$D/first"; exec sleep 300`)...)
	firstAgent := waitPIDFile(t, filepath.Join(dir, "first"))

	second := startBeatwrap(t, env, args("--", "sh", "-c", `touch "$D/second"`)...)
	if code := second.wait(10 * time.Second); code != 1 {
		t.Fatalf("second beatwrap with the same id: exit code = %d, want 1; stderr:\n%s", code, second.stderr)
	}
	msg := second.stderr.String()
	for _, want := range []string{`agent id "twin" already runs on this host`, fmt.Sprintf("beatwrap pid %d", first.Cmd.Process.Pid), "; stop that one, or pass --replace to take over"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal does not say %q:\n%s", want, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "second")); err == nil {
		t.Error("the refused beatwrap started its agent")
	}
	if !alive(firstAgent, 0) {
		t.Fatal("the first agent ended when a second beatwrap was refused")
	}

	replacer := startBeatwrap(t, env, args("--replace", "--", "sh", "-c", `echo $$ > "$D/replacer"; exec sleep 300`)...)
	// The first beatwrap's final beat, for its own agent, comes before any
	// beat of the new one.
	final := bs.next(15*time.Second, func(b wire.Beat) bool { return b.Status.Final() || b.PID != firstAgent && b.PID != 0 })
	if final.Status != wire.StatusStopped || final.PID != firstAgent {
		t.Fatalf("first beat after --replace: status %q pid %d, want the first agent's (%d) final stopped beat", final.Status, final.PID, firstAgent)
	}
	if code := first.wait(10 * time.Second); code != 143 {
		t.Errorf("replaced beatwrap exit code = %d, want 143 (its agent stopped by SIGTERM); stderr:\n%s", code, first.stderr)
	}
	newAgent := waitPIDFile(t, filepath.Join(dir, "replacer"))
	if alive(firstAgent, 0) {
		t.Errorf("the first agent %d still runs after --replace", firstAgent)
	}
	next := bs.next(5*time.Second, func(b wire.Beat) bool { return b.PID != 0 })
	if next.PID != newAgent {
		t.Errorf("beat after the take-over from pid %d, want the new agent %d", next.PID, newAgent)
	}
	replacer.signal(syscall.SIGTERM)
	replacer.wait(10 * time.Second)
}

// BenchmarkSIGKILLToTreeGone measures the time from SIGKILL of beatwrap to
// the moment no process of its agent's tree (agent, child, grandchild) is
// left running, polling /proc every 0.5ms:
//
//	go test -run '^$' -bench SIGKILLToTreeGone -benchtime 30x ./cmd/beatwrap
func BenchmarkSIGKILLToTreeGone(b *testing.B) {
	bin := testutil.Binary(b, "cmd/beatwrap")
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		dir := b.TempDir()
		env := append(os.Environ(), "TREE="+dir, "XDG_RUNTIME_DIR="+dir)
		p := testutil.StartProcEnv(b, bin, env, "--id", "bench-"+strconv.Itoa(i), "--interval", "1s", "--", "sh", "-c", treeScript)
		var tree []proc
		for _, name := range []string{"agent", "child", "grandchild"} {
			path := filepath.Join(dir, name)
			deadline := time.Now().Add(5 * time.Second)
			for {
				data, _ := os.ReadFile(path)
				if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
					start, _ := procStart(pid)
					tree = append(tree, proc{name, pid, start})
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%s not written within 5s", path)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		killed := time.Now()
		p.Cmd.Process.Signal(syscall.SIGKILL)
		for {
			left := false
			for _, q := range tree {
				left = left || q.live()
			}
			if !left {
				break
			}
			if time.Since(killed) > 5*time.Second {
				b.Fatalf("agent tree still running 5s after SIGKILL")
			}
			time.Sleep(500 * time.Microsecond)
		}
		took = append(took, time.Since(killed))
		<-p.Done()
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[len(took)/2]), "ms-gone-p50")
	b.ReportMetric(ms(took[len(took)*9/10]), "ms-gone-p90")
	b.ReportMetric(ms(took[len(took)-1]), "ms-gone-max")
}

// TestReplaceKillsAHungBeatwrap: a beatwrap that cannot run its stop sequence
// (stopped with SIGSTOP here) is killed once its grace and the margin for the
// final beat have passed; its watchdog then ends its agent, and the new one
// takes over.
func TestReplaceKillsAHungBeatwrap(t *testing.T) {
	dir := t.TempDir()
	env := []string{"TREE=" + dir, "XDG_RUNTIME_DIR=" + t.TempDir()}
	hung := startBeatwrap(t, env, "--id", "hung", "--grace", "200ms", "--interval", "1s", "--", "sh", "-c", treeScript)
	tree := waitTree(t, dir)
	killTreeAtEnd(t, tree)
	hung.signal(syscall.SIGSTOP)

	began := time.Now()
	next := startBeatwrap(t, env, "--id", "hung", "--replace", "--interval", "1s", "--",
		"sh", "-c", `echo $$ > "$TREE/next"; exec sleep 300`)
	waitPIDFileWithin(t, filepath.Join(dir, "next"), 20*time.Second)
	if took := time.Since(began); took < 5*time.Second {
		t.Errorf("took over after %v, before the hung beatwrap's grace and margin (5.2s)", took)
	}
	if code := hung.wait(5 * time.Second); code != -1 {
		t.Errorf("hung beatwrap exit code = %d, want -1 (killed)", code)
	}
	for _, p := range tree {
		if p.live() {
			t.Errorf("%s %d of the hung beatwrap still runs after the take-over", p.name, p.pid)
		}
	}
	if !strings.Contains(next.stderr.String(), "did not stop in time: killing it") {
		t.Errorf("--replace did not log the kill:\n%s", next.stderr)
	}
	next.signal(syscall.SIGTERM)
	next.wait(10 * time.Second)
}

// waitPIDFileWithin is waitPIDFile with a bound of d.
func waitPIDFileWithin(t *testing.T, path string, d time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		data, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within %v", path, d)
		}
	}
}
