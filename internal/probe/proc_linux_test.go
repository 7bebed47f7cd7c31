package probe

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// These tests read the real /proc, with real process trees.

func TestSampleRealTree(t *testing.T) {
	// sh ─┬─ sh ─┬─ sleep
	//     │      └─ sleep
	//     └─ sleep
	cmd := startTree(t, nil, `sh -c 'sleep 30 & sleep 30 & wait' & sleep 30 & wait`)
	s := newSampler(t, "/proc")
	got := waitSample(t, s, cmd.Process.Pid, 5*time.Second, func(s Sample) bool { return s.Processes >= 5 })
	if got.Threads < got.Processes {
		t.Errorf("Threads = %d, fewer than the %d processes", got.Threads, got.Processes)
	}
	if got.MemoryBytes == 0 {
		t.Error("MemoryBytes = 0 for a live tree")
	}

	scan := newSampler(t, "/proc")
	scan.mode = childrenScan
	byScan, err := scan.Sample(cmd.Process.Pid, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if byScan.Processes != got.Processes || byScan.Threads != got.Threads {
		t.Errorf("parent scan found %d processes, %d threads; children files %d, %d",
			byScan.Processes, byScan.Threads, got.Processes, got.Threads)
	}

	stopTree(t, cmd)
	if _, err := s.Sample(cmd.Process.Pid, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Sample after the root was reaped: error = %v, want ErrNotFound", err)
	}
}

func TestSampleRealMemory(t *testing.T) {
	// The helper is a grandchild: memory is summed down the tree.
	cmd := startTree(t, []string{helperEnv + "=alloc"}, `"$0" & wait`, os.Args[0])
	s := newSampler(t, "/proc")
	got := waitSample(t, s, cmd.Process.Pid, 20*time.Second, func(s Sample) bool { return s.MemoryMB() >= 190 })
	t.Logf("%d processes, %.0f MiB", got.Processes, got.MemoryMB())
}

func TestSampleRealCPU(t *testing.T) {
	cmd := startTree(t, []string{helperEnv + "=spin"}, `"$0" & wait`, os.Args[0])
	s := newSampler(t, "/proc")
	waitSample(t, s, cmd.Process.Pid, 5*time.Second, func(s Sample) bool { return s.Processes >= 2 })
	spinner := childOf(t, cmd.Process.Pid)

	// The machine is shared, and a busy one may not give the spinner half a
	// core. Every window is checked against the spinner's own CPU time as
	// procfs reads it; more than 50% must show once the spinner gets it.
	var seen []float64
	prevAt := time.Now()
	if _, err := s.Sample(cmd.Process.Pid, prevAt); err != nil {
		t.Fatal(err)
	}
	prevCPU := cpuTime(t, spinner)
	for range 8 {
		time.Sleep(500 * time.Millisecond)
		now := time.Now()
		got, err := s.Sample(cmd.Process.Pid, now)
		if err != nil {
			t.Fatal(err)
		}
		cpu := cpuTime(t, spinner)
		want := (cpu - prevCPU) / now.Sub(prevAt).Seconds() * 100
		prevAt, prevCPU = now, cpu
		if got.CPUPercent < want-10 || got.CPUPercent > want+10 {
			t.Errorf("CPUPercent = %.1f, the spinner alone used %.1f%%", got.CPUPercent, want)
		}
		if got.CPUPercent > 50 {
			t.Logf("CPUPercent = %.1f (procfs: %.1f)", got.CPUPercent, want)
			return
		}
		seen = append(seen, got.CPUPercent)
	}
	t.Logf("the spinner never got half a core; CPUPercent matched procfs at %v", seen)
}

// childOf returns the only child of pid, found through procfs.
func childOf(t *testing.T, pid int) procfs.Proc {
	t.Helper()
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	procs, err := fs.AllProcs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if st, err := p.Stat(); err == nil && st.PPID == pid {
			return p
		}
	}
	t.Fatalf("pid %d has no child", pid)
	return procfs.Proc{}
}

// cpuTime is p's CPU time in seconds, as procfs reads it.
func cpuTime(t *testing.T, p procfs.Proc) float64 {
	t.Helper()
	st, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.CPUTime()
}

// The hand-written stat parser reads what procfs reads.
func TestParseStatMatchesProcfs(t *testing.T) {
	cmd := startTree(t, nil, `exec sleep 30`)
	pid := cmd.Process.Pid
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	proc, err := fs.Proc(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until sh has become sleep and sleeps: then nothing in stat moves.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := proc.Stat()
		if err == nil && st.Comm == "sleep" && st.State == "S" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not settle into sleep: %+v, %v", pid, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want, err := proc.Stat()
	if err != nil {
		t.Fatal(err)
	}
	s := newSampler(t, "/proc")
	got, err := s.readStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if got.ppid != want.PPID || string(got.state) != want.State || got.threads != want.NumThreads ||
		got.ticks != uint64(want.UTime+want.STime)+uint64(want.CUTime+want.CSTime) ||
		got.start != want.Starttime || got.rssPages != uint64(want.RSS) {
		t.Errorf("readStat(%d) = %+v, procfs has %+v", pid, got, want)
	}
}

func BenchmarkSample(b *testing.B) {
	cmd := startTree(b, nil, `sleep 100 & sleep 100 & wait`)
	s, err := NewSampler("/proc")
	if err != nil {
		b.Fatal(err)
	}
	waitSample(b, s, cmd.Process.Pid, 5*time.Second, func(s Sample) bool { return s.Processes == 3 })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sample(cmd.Process.Pid, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSampleScan is the same tree on a kernel without children files:
// the cost grows with every process on the host (or in the container).
func BenchmarkSampleScan(b *testing.B) {
	cmd := startTree(b, nil, `sleep 100 & sleep 100 & wait`)
	s, err := NewSampler("/proc")
	if err != nil {
		b.Fatal(err)
	}
	s.mode = childrenScan
	waitSample(b, s, cmd.Process.Pid, 5*time.Second, func(s Sample) bool { return s.Processes == 3 })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sample(cmd.Process.Pid, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// startTree runs script with sh in a process group of its own, killed and
// reaped when the test ends. args become $0, $1...
func startTree(tb testing.TB, env []string, script string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command("sh", append([]string{"-c", script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stopTree(tb, cmd) })
	return cmd
}

// stopTree kills the process group of cmd and reaps its leader.
func stopTree(tb testing.TB, cmd *exec.Cmd) {
	tb.Helper()
	if cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		tb.Errorf("pid %d not reaped 10s after SIGKILL", cmd.Process.Pid)
	}
}

// waitSample samples pid every 50ms until ok accepts a sample, and fails the
// test if none does within d.
func waitSample(tb testing.TB, s *Sampler, pid int, d time.Duration, ok func(Sample) bool) Sample {
	tb.Helper()
	timeout := time.After(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := s.Sample(pid, time.Now())
		if err != nil {
			tb.Fatalf("Sample(%d): %v", pid, err)
		}
		if ok(got) {
			return got
		}
		select {
		case <-tick.C:
		case <-timeout:
			tb.Fatalf("Sample(%d) after %v: %+v, not what the test waits for", pid, d, got)
		}
	}
}

func TestLookupAndGroup(t *testing.T) {
	cmd := startTree(t, nil, `sleep 30 & sleep 30 & wait`)
	leader := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	var members []Process
	for len(members) < 3 && time.Now().Before(deadline) {
		var err error
		if members, err = Group("/proc", leader); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(members) != 3 {
		t.Fatalf("Group(%d) = %v, want the shell and its 2 sleeps", leader, members)
	}

	got, err := Lookup("/proc", leader)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	p, err := fs.Proc(leader)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if got.PID != leader || got.Start != st.Starttime {
		t.Errorf("Lookup(%d) = %+v, want start %d (procfs)", leader, got, st.Starttime)
	}
	if mine, _ := Group("/proc", syscall.Getpgrp()); len(mine) == 0 {
		t.Error("Group of the test's own process group is empty")
	}

	// Killed and not reaped: the leader is a zombie, which is not live.
	if err := syscall.Kill(-leader, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := Lookup("/proc", leader)
		left, gerr := Group("/proc", leader)
		if errors.Is(err, ErrNotFound) && gerr == nil && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGKILL: Lookup error %v, Group %v %v; want ErrNotFound and none", err, left, gerr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(leader)); err != nil {
		t.Errorf("the leader was reaped before the check (%v): the test did not see a zombie", err)
	}
	if _, err := Lookup("/proc", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(0) error = %v, want ErrNotFound", err)
	}
}
