package supervise

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sh runs script with /bin/sh.
func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// result is what Run returned.
type result struct {
	exit Exit
	err  error
}

// recorder collects the callbacks of one Supervisor.
type recorder struct {
	mu      sync.Mutex
	pids    []int
	exits   []Exit
	willRst []bool
	started chan int // each pid as it starts
}

func newRecorder() *recorder { return &recorder{started: make(chan int, 100)} }

func (r *recorder) onStart(pid, _ int) {
	r.mu.Lock()
	r.pids = append(r.pids, pid)
	r.mu.Unlock()
	r.started <- pid
}

func (r *recorder) onExit(e Exit, willRestart bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exits = append(r.exits, e)
	r.willRst = append(r.willRst, willRestart)
}

func (r *recorder) starts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pids)
}

// newSupervisor fills in what every test wants and fails the test on a bad
// config.
func newSupervisor(t *testing.T, cfg Config, rec *recorder) *Supervisor {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if rec != nil {
		cfg.OnStart, cfg.OnExit = rec.onStart, rec.onExit
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return s
}

// start runs s in the background; the test ends only after Run returned.
func start(t *testing.T, ctx context.Context, s *Supervisor) <-chan result {
	t.Helper()
	ch := make(chan result, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e, err := s.Run(ctx)
		ch <- result{e, err}
	}()
	t.Cleanup(func() {
		// Two different stop signals: the second kills at once (the same
		// one twice in a row would be taken for one request).
		s.Signal(syscall.SIGTERM)
		s.Signal(syscall.SIGINT)
		wg.Wait()
	})
	return ch
}

// wait returns Run's result, failing the test after d.
func wait(t *testing.T, ch <-chan result, d time.Duration) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("Run did not return within %v", d)
		return result{}
	}
}

// run runs s to the end.
func run(t *testing.T, s *Supervisor) result {
	t.Helper()
	return wait(t, start(t, context.Background(), s), 20*time.Second)
}

// waitFile waits until path exists and returns its content.
func waitFile(t *testing.T, path string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		if b, err := os.ReadFile(path); err == nil {
			return string(b)
		}
		select {
		case <-deadline:
			t.Fatalf("%s did not appear within %v", path, d)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitStarted returns the pid of the next start.
func waitStarted(t *testing.T, rec *recorder) int {
	t.Helper()
	select {
	case pid := <-rec.started:
		return pid
	case <-time.After(10 * time.Second):
		t.Fatal("the child did not start within 10s")
		return 0
	}
}

// gone reports whether pid has ended: no such process, or a zombie.
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || strings.HasPrefix(s[i+1:], " Z")
}

// ignoresTERM reports whether pid has SIGTERM ignored.
func ignoresTERM(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("parse SigIgn of %d: %v", pid, err)
			}
			return mask&(1<<(syscall.SIGTERM-1)) != 0
		}
	}
	t.Fatalf("no SigIgn in status of %d", pid)
	return false
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	plain := write("plain", "#!/bin/sh\nexit 0\n", 0o644)
	badInterp := write("bad-interpreter", "#!/nonexistent/beatwrap-shell\n", 0o755)
	write("prog", "#!/bin/sh\nexit 5\n", 0o755)

	tests := []struct {
		name    string
		argv    []string
		dir     string
		want    int
		wantErr error
	}{
		{"exit 0", sh("exit 0"), "", 0, nil},
		{"exit 7", sh("exit 7"), "", 7, nil},
		{"killed by signal 9", sh("kill -9 $$"), "", 137, nil},
		{"not in PATH", []string{"beatwrap-no-such-command"}, "", 127, ErrNotFound},
		{"missing path", []string{filepath.Join(dir, "missing")}, "", 127, ErrNotFound},
		{"missing interpreter", []string{badInterp}, "", 127, ErrNotFound},
		{"not executable", []string{plain}, "", 126, ErrNotExecutable},
		{"a directory", []string{dir}, "", 126, ErrNotExecutable},
		{"relative to Dir", []string{"./prog"}, dir, 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSupervisor(t, Config{Argv: tt.argv, Dir: tt.dir, Grace: time.Second}, nil)
			got := run(t, s)
			if code := got.exit.ExitCode(); code != tt.want {
				t.Errorf("ExitCode() = %d, want %d (exit %+v)", code, tt.want, got.exit)
			}
			if tt.wantErr == nil {
				if got.err != nil {
					t.Errorf("Run() error = %v, want nil", got.err)
				}
				return
			}
			if !errors.Is(got.err, tt.wantErr) || !errors.Is(got.exit.StartErr, tt.wantErr) {
				t.Errorf("Run() error = %v, StartErr = %v, want %v", got.err, got.exit.StartErr, tt.wantErr)
			}
		})
	}
}

// TestNotFoundHint: the hint is added to the error of a command that is not
// found, which still says ErrNotFound and exits 127; a command found but
// not executable gets none.
func TestNotFoundHint(t *testing.T) {
	hint := func(name string) string { return "hint for " + name }
	s := newSupervisor(t, Config{Argv: []string{"beatwrap-no-such-command"}, NotFoundHint: hint}, nil)
	got := run(t, s)
	if !errors.Is(got.err, ErrNotFound) || got.exit.ExitCode() != 127 {
		t.Errorf("Run() = %+v, %v; want ErrNotFound, exit 127", got.exit, got.err)
	}
	if want := "; hint for beatwrap-no-such-command"; got.err == nil || !strings.HasSuffix(got.err.Error(), want) {
		t.Errorf("Run() error = %v, want it to end with %q", got.err, want)
	}
	s = newSupervisor(t, Config{Argv: []string{t.TempDir()}, NotFoundHint: hint}, nil)
	got = run(t, s)
	if !errors.Is(got.err, ErrNotExecutable) || strings.Contains(got.err.Error(), "hint") {
		t.Errorf("Run() error = %v, want ErrNotExecutable without a hint", got.err)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no command", Config{}, "no command"},
		{"negative grace", Config{Argv: sh("true"), Grace: -time.Second}, `grace must not be negative, got -1s`},
		{"bad mode", Config{Argv: sh("true"), Restart: Policy{Mode: "often"}}, `restart mode must be`},
		{"bad window", Config{Argv: sh("true"), Restart: Policy{Mode: RestartAlways, Limit: 1}}, `restart window`},
		{"bad orphan", Config{Argv: sh("true"), Orphan: "adopt"}, `orphan policy must be kill or keep, got "adopt"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTermIsForwardedAndHonoured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	rec := newRecorder()
	policy, err := ParsePolicy(RestartAlways, 5, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s := newSupervisor(t, Config{
		Argv:    sh(`trap 'exit 0' TERM; touch "` + ready + `"; while :; do sleep 0.05; done`),
		Grace:   10 * time.Second,
		Restart: policy,
	}, rec)
	ch := start(t, context.Background(), s)
	waitFile(t, ready, 10*time.Second)

	begin := time.Now()
	s.Signal(syscall.SIGTERM)
	got := wait(t, ch, 5*time.Second)
	if took := time.Since(begin); took >= 5*time.Second {
		t.Errorf("stop took %v, want well under the 10s grace", took)
	}
	if got.err != nil || got.exit.ExitCode() != 0 {
		t.Errorf("Run() = %+v, %v, want code 0", got.exit, got.err)
	}
	if got.exit.Stopped != StopSignal || got.exit.Killed {
		t.Errorf("Stopped = %q, Killed = %v, want %q, false", got.exit.Stopped, got.exit.Killed, StopSignal)
	}
	if n := rec.starts(); n != 1 {
		t.Errorf("child started %d times, want 1: our own stop never restarts", n)
	}
}

func TestOtherSignalsAreForwarded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	s := newSupervisor(t, Config{
		Argv: sh(`for s in HUP QUIT USR1 USR2 WINCH; do trap "echo $s >> '` + got + `'" $s; done
trap 'exit 0' TERM
touch "` + ready + `"
while :; do sleep 0.05; done`),
		Grace: 10 * time.Second,
	}, nil)
	ch := start(t, context.Background(), s)
	waitFile(t, ready, 10*time.Second)

	var want strings.Builder
	for _, sig := range ForwardedSignals() {
		ss := sig.(syscall.Signal)
		if ss == syscall.SIGTERM || ss == syscall.SIGINT {
			continue
		}
		s.Signal(sig)
		name := strings.TrimPrefix(signalName(ss), "SIG")
		want.WriteString(name + "\n")
		// One at a time: the shell runs traps in its own order.
		deadline := time.After(5 * time.Second)
		for {
			b, _ := os.ReadFile(got)
			if string(b) == want.String() {
				break
			}
			select {
			case <-deadline:
				t.Fatalf("after %s the trap file holds %q, want %q", name, b, want.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	s.Signal(syscall.SIGTERM)
	if r := wait(t, ch, 5*time.Second); r.exit.ExitCode() != 0 {
		t.Errorf("ExitCode() = %d, want 0", r.exit.ExitCode())
	}
}

// stubborn is a child that ignores SIGTERM and starts two grandchildren that
// ignore it too; their pids go to pids, then ready appears.
func stubborn(pids, ready string) []string {
	return sh(`trap '' TERM
sleep 30 & echo $! >> "` + pids + `"
sleep 30 & echo $! >> "` + pids + `"
touch "` + ready + `"
wait`)
}

// grandchildren reads the pids stubborn wrote and checks that they really
// ignore SIGTERM, or the test would prove nothing.
func grandchildren(t *testing.T, pids string) []int {
	t.Helper()
	var got []int
	for f := range strings.FieldsSeq(waitFile(t, pids, time.Second)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		if !ignoresTERM(t, pid) {
			t.Fatalf("grandchild %d does not ignore SIGTERM", pid)
		}
		got = append(got, pid)
	}
	if len(got) != 2 {
		t.Fatalf("got grandchildren %v, want 2", got)
	}
	return got
}

// waitGone fails unless every pid has ended within d.
func waitGone(t *testing.T, pids []int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for _, pid := range pids {
		for !gone(pid) {
			select {
			case <-deadline:
				t.Fatalf("process %d still runs %v after the child ended", pid, d)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

func TestStopSequence(t *testing.T) {
	const grace = 300 * time.Millisecond
	tests := []struct {
		name    string
		grace   time.Duration
		second  bool // send a second SIGTERM
		cancel  bool // also cancel Run's context: must not count as a second one
		minTook time.Duration
		maxTook time.Duration
	}{
		{"killed after grace", grace, false, false, grace, 5 * time.Second},
		{"cancel does not cut the grace short", grace, false, true, grace, 5 * time.Second},
		{"second TERM kills at once", 30 * time.Second, true, false, 0, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pids, ready := filepath.Join(dir, "pids"), filepath.Join(dir, "ready")
			s := newSupervisor(t, Config{Argv: stubborn(pids, ready), Grace: tt.grace}, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch := start(t, ctx, s)
			waitFile(t, ready, 10*time.Second)
			kids := grandchildren(t, pids)

			begin := time.Now()
			s.Signal(syscall.SIGTERM)
			if tt.cancel {
				cancel()
			}
			if tt.second {
				// Past repeatWindow: a second request, not the first again.
				time.Sleep(repeatWindow + 300*time.Millisecond)
				s.Signal(syscall.SIGTERM)
			}
			got := wait(t, ch, 10*time.Second)
			took := time.Since(begin)
			if took < tt.minTook || took > tt.maxTook {
				t.Errorf("stop took %v, want between %v and %v", took, tt.minTook, tt.maxTook)
			}
			if got.exit.Signal != syscall.SIGKILL || got.exit.ExitCode() != 137 || !got.exit.Killed {
				t.Errorf("Run() = %+v, want killed by SIGKILL, code 137", got.exit)
			}
			if got.exit.Stopped != StopSignal {
				t.Errorf("Stopped = %q, want %q", got.exit.Stopped, StopSignal)
			}
			waitGone(t, kids, 5*time.Second)
		})
	}
}

func TestContextCancelStops(t *testing.T) {
	t.Parallel()
	ready := filepath.Join(t.TempDir(), "ready")
	s := newSupervisor(t, Config{
		Argv:    sh(`trap 'exit 0' TERM; touch "` + ready + `"; while :; do sleep 0.05; done`),
		Grace:   10 * time.Second,
		Restart: Policy{Mode: RestartAlways, Limit: 5, Window: time.Minute},
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ch := start(t, ctx, s)
	waitFile(t, ready, 10*time.Second)
	cancel()
	got := wait(t, ch, 5*time.Second)
	if got.exit.ExitCode() != 0 || got.exit.Stopped != StopContext {
		t.Errorf("Run() = %+v, want code 0 stopped by %q", got.exit, StopContext)
	}
}

func TestStopBeforeRunStartsNothing(t *testing.T) {
	rec := newRecorder()
	s := newSupervisor(t, Config{Argv: sh("exit 3"), Grace: time.Second}, rec)
	s.Signal(syscall.SIGTERM)
	got := run(t, s)
	if n := rec.starts(); n != 0 {
		t.Errorf("child started %d times, want 0", n)
	}
	if got.exit.Stopped != StopSignal || got.exit.ExitCode() != 0 {
		t.Errorf("Run() = %+v, want stopped by signal with code 0", got.exit)
	}
}

// TestRepeatedStopSignalIsOneRequest: the same stop signal again within
// repeatWindow of the one counted before is the same request (GNU timeout
// sends SIGTERM to beatwrap, then to its group); later, or another signal,
// it is a second one, which skips the grace.
func TestRepeatedStopSignalIsOneRequest(t *testing.T) {
	type sent struct {
		after time.Duration // since the signal before
		sig   syscall.Signal
	}
	term, intr := syscall.SIGTERM, syscall.SIGINT
	tests := []struct {
		name string
		sent []sent
		want int
	}{
		{"one", []sent{{0, term}}, 1},
		{"twice at once", []sent{{0, term}, {0, term}}, 1},
		{"twice just inside the window", []sent{{0, term}, {repeatWindow - time.Millisecond, term}}, 1},
		{"twice, the window apart", []sent{{0, term}, {repeatWindow, term}}, 2},
		{"twice, 500ms apart", []sent{{0, term}, {500 * time.Millisecond, term}}, 2},
		{"INT then TERM at once", []sent{{0, intr}, {0, term}}, 2},
		{"a flood escalates once the window from the first is over",
			[]sent{{0, term}, {150 * time.Millisecond, term}, {150 * time.Millisecond, term}}, 2},
		{"three times, 500ms apart", []sent{{0, intr}, {500 * time.Millisecond, intr}, {500 * time.Millisecond, intr}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTime{now: time.Unix(1_700_000_000, 0)}
			s := newSupervisor(t, Config{Argv: sh("exit 0"), Now: ft.Now}, nil)
			for _, x := range tt.sent {
				ft.advance(x.after)
				s.Signal(x.sig)
			}
			if got := s.take().stopSignals; got != tt.want {
				t.Errorf("stop signals counted = %d, want %d", got, tt.want)
			}
		})
	}
}

// fakeTime is a clock and a timer that fires at once, recording the delays.
type fakeTime struct {
	mu     sync.Mutex
	now    time.Time
	step   time.Duration // added at each Now call
	delays []time.Duration
	never  bool // timers never fire
}

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(f.step)
	return f.now
}

func (f *fakeTime) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fakeTime) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delays = append(f.delays, d)
	ch := make(chan time.Time, 1)
	if !f.never {
		ch <- f.now
	}
	return ch
}

func (f *fakeTime) Delays() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.delays...)
}

// failingUntil is a child that exits 1 on its first n runs and 0 after.
func failingUntil(t *testing.T, n int) []string {
	t.Helper()
	count := filepath.Join(t.TempDir(), "count")
	return sh(`n=$(cat "` + count + `" 2>/dev/null || echo 0); echo $((n+1)) > "` + count + `"; [ "$n" -ge ` + strconv.Itoa(n) + ` ] && exit 0; exit 1`)
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		name       string
		argv       []string
		mode       string
		limit      int
		step       time.Duration // clock step per Now call
		wantStarts int
		wantCode   int
	}{
		{"never", sh("exit 3"), RestartNever, 5, 0, 1, 3},
		{"on-failure stops at the limit", sh("exit 3"), RestartOnFailure, 2, 0, 3, 3},
		{"on-failure leaves success alone", sh("exit 0"), RestartOnFailure, 5, 0, 1, 0},
		{"on-failure counts a signal death", sh("kill -9 $$"), RestartOnFailure, 2, 0, 3, 137},
		{"always restarts success too", sh("exit 0"), RestartAlways, 2, 0, 3, 0},
		{"limit 0 allows none", sh("exit 3"), RestartAlways, 0, 0, 1, 3},
		{"limit counts inside the window", failingUntil(t, 3), RestartOnFailure, 1, 0, 2, 1},
		{"restarts outside the window are forgotten", failingUntil(t, 3), RestartOnFailure, 1, 11 * time.Minute, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ft := &fakeTime{now: time.Unix(1_700_000_000, 0), step: tt.step}
			rec := newRecorder()
			s := newSupervisor(t, Config{
				Argv:    tt.argv,
				Grace:   time.Second,
				Restart: Policy{Mode: tt.mode, Limit: tt.limit, Window: 10 * time.Minute},
				Now:     ft.Now,
				After:   ft.After,
			}, rec)
			got := run(t, s)
			if got.err != nil {
				t.Fatalf("Run() error = %v", got.err)
			}
			if n := rec.starts(); n != tt.wantStarts {
				t.Errorf("child started %d times, want %d", n, tt.wantStarts)
			}
			if code := got.exit.ExitCode(); code != tt.wantCode {
				t.Errorf("ExitCode() = %d, want %d", code, tt.wantCode)
			}
			if got, want := s.Restarts(), tt.wantStarts-1; got != want {
				t.Errorf("Restarts() = %d, want %d", got, want)
			}
			// OnExit says true for every run but the last.
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for i, w := range rec.willRst {
				if want := i < tt.wantStarts-1; w != want {
					t.Errorf("OnExit #%d willRestart = %v, want %v", i, w, want)
				}
			}
			if d := ft.Delays(); len(d) != tt.wantStarts-1 {
				t.Errorf("waited %d times (%v), want %d", len(d), d, tt.wantStarts-1)
			}
		})
	}
}

func TestBackoffGrows(t *testing.T) {
	s60 := 60 * time.Second
	tests := []struct {
		name   string
		argv   []string
		step   time.Duration
		jitter func() float64
		want   []time.Duration // before jitter
	}{
		{"doubling to the cap", sh("exit 1"), 0, func() float64 { return 0 },
			[]time.Duration{1e9, 2e9, 4e9, 8e9, 16e9, 32e9, s60, s60, s60}},
		{"with jitter", sh("exit 1"), 0, nil,
			[]time.Duration{1e9, 2e9, 4e9, 8e9, 16e9, 32e9, s60, s60, s60}},
		{"reset after a long run", failingUntil(t, 4), 11 * time.Minute, func() float64 { return 0 },
			[]time.Duration{1e9, 1e9, 1e9, 1e9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ft := &fakeTime{now: time.Unix(1_700_000_000, 0), step: tt.step}
			s := newSupervisor(t, Config{
				Argv:    tt.argv,
				Grace:   time.Second,
				Restart: Policy{Mode: RestartOnFailure, Limit: len(tt.want), Window: time.Hour},
				Now:     ft.Now,
				After:   ft.After,
			}, nil)
			if tt.jitter != nil {
				s.jitter = tt.jitter
			}
			run(t, s)
			got := ft.Delays()
			if len(got) != len(tt.want) {
				t.Fatalf("delays = %v, want %d of them", got, len(tt.want))
			}
			for i, d := range got {
				if lo := tt.want[i] - tt.want[i]/5; d < lo || d > tt.want[i] {
					t.Errorf("delay #%d = %v, want within [%v, %v]", i, d, lo, tt.want[i])
				}
				if tt.jitter != nil && d != tt.want[i] {
					t.Errorf("delay #%d = %v, want exactly %v without jitter", i, d, tt.want[i])
				}
			}
		})
	}
}

func TestStopDuringBackoffCancelsRestart(t *testing.T) {
	t.Parallel()
	ft := &fakeTime{now: time.Unix(1_700_000_000, 0), never: true}
	var s *Supervisor
	rec := newRecorder()
	s = newSupervisor(t, Config{
		Argv:    sh("exit 3"),
		Grace:   time.Second,
		Restart: Policy{Mode: RestartAlways, Limit: 5, Window: time.Minute},
		Now:     ft.Now,
		After:   ft.After,
		OnStart: rec.onStart,
		OnExit: func(e Exit, willRestart bool) {
			rec.onExit(e, willRestart)
			if willRestart {
				s.Signal(syscall.SIGTERM)
			}
		},
	}, nil)
	got := run(t, s)
	if n := rec.starts(); n != 1 {
		t.Errorf("child started %d times, want 1", n)
	}
	if got.exit.ExitCode() != 3 || got.exit.Stopped != StopSignal {
		t.Errorf("Run() = %+v, want code 3 stopped by signal", got.exit)
	}
}

// politeLoop is a child that leaves a file named after its pid once it is
// ready, and exits 0 on SIGTERM.
func politeLoop(dir string) []string {
	return sh(`trap 'exit 0' TERM; touch "` + dir + `/ready.$$"; while :; do sleep 0.05; done`)
}

func TestRestartChild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := newRecorder()
	policy, err := ParsePolicy(RestartNever, 5, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s := newSupervisor(t, Config{Argv: politeLoop(dir), Grace: 5 * time.Second, Restart: policy}, rec)
	ch := start(t, context.Background(), s)

	first := waitStarted(t, rec)
	waitFile(t, filepath.Join(dir, "ready."+strconv.Itoa(first)), 10*time.Second)
	s.RestartChild("stalled for 5m")
	second := waitStarted(t, rec)
	waitFile(t, filepath.Join(dir, "ready."+strconv.Itoa(second)), 10*time.Second)

	if second == first {
		t.Errorf("restarted child has the old pid %d", first)
	}
	if got := s.PID(); got != second {
		t.Errorf("PID() = %d, want %d", got, second)
	}
	if got := s.Restarts(); got != 1 {
		t.Errorf("Restarts() = %d, want 1", got)
	}
	rec.mu.Lock()
	if len(rec.exits) != 1 || !rec.willRst[0] || rec.exits[0].ExitCode() != 0 || rec.exits[0].Stopped != StopNone {
		t.Errorf("OnExit got %+v %v, want one exit 0, willRestart true, not a stop", rec.exits, rec.willRst)
	}
	rec.mu.Unlock()
	if !gone(first) {
		t.Errorf("old child %d still runs", first)
	}

	s.Signal(syscall.SIGTERM)
	got := wait(t, ch, 10*time.Second)
	if got.exit.ExitCode() != 0 || rec.starts() != 2 {
		t.Errorf("Run() = %+v after %d starts, want code 0 after 2", got.exit, rec.starts())
	}
	if s.PID() != 0 {
		t.Errorf("PID() = %d after Run, want 0", s.PID())
	}
}

func TestStopChild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := newRecorder()
	s := newSupervisor(t, Config{
		Argv:    politeLoop(dir),
		Grace:   5 * time.Second,
		Restart: Policy{Mode: RestartAlways, Limit: 5, Window: time.Minute},
	}, rec)
	ch := start(t, context.Background(), s)
	pid := waitStarted(t, rec)
	waitFile(t, filepath.Join(dir, "ready."+strconv.Itoa(pid)), 10*time.Second)
	s.StopChild("stalled for 5m")
	got := wait(t, ch, 10*time.Second)
	if got.exit.Stopped != StopRequest || got.exit.Reason != "stalled for 5m" {
		t.Errorf("Run() = %+v, want stopped by request with the reason", got.exit)
	}
	if n := rec.starts(); n != 1 {
		t.Errorf("child started %d times, want 1", n)
	}
}

// syncBuffer is a bytes.Buffer safe for the copier and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestOutput(t *testing.T) {
	var lines strings.Builder
	for i := 1; i <= 300; i++ {
		lines.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	script := `for i in $(seq 300); do echo "line $i"; done; echo err >&2; echo "py=${PYTHONUNBUFFERED-unset}"`
	env := []string{"PATH=" + os.Getenv("PATH")}
	tests := []struct {
		name       string
		onOutput   bool
		env        []string
		toFile     bool
		wantPython string
	}{
		{"piped with OnOutput", true, env, false, "1"},
		{"a set PYTHONUNBUFFERED wins", true, append(env, "PYTHONUNBUFFERED=0"), false, "0"},
		{"files passed straight", false, env, true, "unset"},
		{"a writer that is no file is piped", false, env, false, "unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			cfg := Config{Argv: sh(script), Env: tt.env, Grace: time.Second}
			if tt.onOutput {
				cfg.OnOutput = func() { calls.Add(1) }
			}
			var outBuf, errBuf syncBuffer
			var outFile, errFile *os.File
			if tt.toFile {
				dir := t.TempDir()
				var err error
				if outFile, err = os.Create(filepath.Join(dir, "out")); err != nil {
					t.Fatal(err)
				}
				if errFile, err = os.Create(filepath.Join(dir, "err")); err != nil {
					t.Fatal(err)
				}
				defer outFile.Close()
				defer errFile.Close()
				cfg.Stdout, cfg.Stderr = outFile, errFile
			} else {
				cfg.Stdout, cfg.Stderr = &outBuf, &errBuf
			}
			got := run(t, newSupervisor(t, cfg, nil))
			if got.exit.ExitCode() != 0 {
				t.Fatalf("ExitCode() = %d, want 0", got.exit.ExitCode())
			}
			gotOut, gotErr := outBuf.String(), errBuf.String()
			if tt.toFile {
				b, _ := os.ReadFile(outFile.Name())
				gotOut = string(b)
				b, _ = os.ReadFile(errFile.Name())
				gotErr = string(b)
			}
			if want := lines.String() + "py=" + tt.wantPython + "\n"; gotOut != want {
				t.Errorf("stdout = %q..., want %q...", cut(gotOut), cut(want))
				if !strings.HasSuffix(gotOut, "py="+tt.wantPython+"\n") {
					t.Errorf("stdout ends %q, want PYTHONUNBUFFERED %q", gotOut[max(0, len(gotOut)-20):], tt.wantPython)
				}
			}
			if gotErr != "err\n" {
				t.Errorf("stderr = %q, want %q", gotErr, "err\n")
			}
			if tt.onOutput && calls.Load() < 2 {
				t.Errorf("OnOutput called %d times, want at least 2 (one per stream)", calls.Load())
			}
		})
	}
}

func cut(s string) string { return s[:min(len(s), 40)] }

func TestOutputArrivesAtOnce(t *testing.T) {
	t.Parallel()
	seen := make(chan struct{}, 1)
	var out syncBuffer
	s := newSupervisor(t, Config{
		// No newline: nothing may wait for a line end or a full buffer.
		Argv:   sh(`printf first; sleep 30`),
		Stdout: &out,
		Grace:  200 * time.Millisecond,
		OnOutput: func() {
			select {
			case seen <- struct{}{}:
			default:
			}
		},
	}, nil)
	ch := start(t, context.Background(), s)
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("OnOutput was not called while the child ran")
	}
	if got := out.String(); got != "first" {
		t.Errorf("stdout = %q while the child runs, want %q", got, "first")
	}
	s.Signal(syscall.SIGTERM)
	if got := wait(t, ch, 10*time.Second); got.exit.Signal != syscall.SIGTERM {
		t.Errorf("Run() = %+v, want killed by SIGTERM", got.exit)
	}
}

func TestRestartChildObeysTheLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := newRecorder()
	s := newSupervisor(t, Config{
		Argv:    politeLoop(dir),
		Grace:   5 * time.Second,
		Restart: Policy{Mode: RestartNever, Limit: 1, Window: time.Hour},
	}, rec)
	ch := start(t, context.Background(), s)
	for range 2 {
		pid := waitStarted(t, rec)
		waitFile(t, filepath.Join(dir, "ready."+strconv.Itoa(pid)), 10*time.Second)
		s.RestartChild("stalled")
	}
	got := wait(t, ch, 10*time.Second)
	if got.exit.Stopped != StopRequest || !strings.Contains(got.exit.Reason, "restart limit") {
		t.Errorf("Run() = %+v, want stopped by request, the restart limit named", got.exit)
	}
	if n := rec.starts(); n != 2 {
		t.Errorf("child started %d times, want 2", n)
	}
}
