package e2e

import (
	"fmt"
	"net/http"
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

// The detection benchmarks time what a user waits for, with the real
// binaries: each iteration is one agent's life and death. Run them with
//
//	go test -run '^$' -bench Detection -benchtime 3x ./e2e/
//
// Each reports ms from the event to beatwatch's API showing it, and the
// configured limit beside it.

// benchWatch starts a beatwatch with recovery off, for detection only.
func benchWatch(b *testing.B, redis, ns string) *watcher {
	b.Helper()
	port := testutil.FreePort(b)
	p := testutil.StartProc(b, testutil.Binary(b, "cmd/beatwatch"), nil, "--redis", redis, "--namespace", ns,
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--check-interval", "100ms", "--recover", "none", "--log-level", "warn")
	w := &watcher{proc: p, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	testutil.Eventually(b, 10*time.Second, "beatwatch up", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(p.Cmd.Process.Pid))
		return err == nil && w.ready()
	})
	return w
}

func (w *watcher) ready() bool {
	resp, err := http.Get(w.base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// until polls the agent every 5ms until cond holds and returns when.
func until(b *testing.B, w *watcher, id string, timeout time.Duration, cond func(monitor.Agent) bool) (time.Time, monitor.Agent) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if a, ok := w.agent(b, id); ok && cond(a) {
			return time.Now(), a
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("agent %s: condition not met within %v", id, timeout)
	return time.Time{}, monitor.Agent{}
}

func readStamp(b *testing.B, path string) time.Time {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatalf("read %s: %v", path, err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		b.Fatalf("parse %s: %v", path, err)
	}
	return time.Unix(0, ns)
}

// BenchmarkCrashDetection: the child exits non-zero; beatwrap sends a final
// beat at once, so failure is declared without waiting for a timeout.
func BenchmarkCrashDetection(b *testing.B) {
	redis, ns := testutil.RedisURL(b), testutil.Namespace(b)
	w := benchWatch(b, redis, ns)
	bin := testutil.Binary(b, "cmd/beatwrap")
	var total time.Duration
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("crash-%d", i)
		stamp := filepath.Join(b.TempDir(), "exit")
		p := testutil.StartProc(b, bin, nil, "--redis", redis, "--namespace", ns, "--id", id, "--interval", "1s",
			"--", "sh", "-c", "sleep 1.5; date +%s%N > "+stamp+"; exit 1")
		until(b, w, id, 10*time.Second, func(a monitor.Agent) bool { return a.State == monitor.Healthy })
		seen, _ := until(b, w, id, 10*time.Second, func(a monitor.Agent) bool { return a.State == monitor.Failed })
		p.Wait(5 * time.Second)
		total += seen.Sub(readStamp(b, stamp))
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-exit-to-failed")
}

// BenchmarkSilentDeathDetection: beatwrap and its child are SIGKILLed, so
// nothing says goodbye; failure must come from the missed beats alone.
func BenchmarkSilentDeathDetection(b *testing.B) {
	redis, ns := testutil.RedisURL(b), testutil.Namespace(b)
	w := benchWatch(b, redis, ns)
	bin := testutil.Binary(b, "cmd/beatwrap")
	const interval, missed = time.Second, 3
	var total, late time.Duration
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("silent-%d", i)
		p := testutil.StartProc(b, bin, nil, "--redis", redis, "--namespace", ns, "--id", id,
			"--interval", interval.String(), "--missed-beats", strconv.Itoa(missed), "--", "sleep", "600")
		until(b, w, id, 10*time.Second, func(a monitor.Agent) bool { return a.State == monitor.Healthy && a.Status == "healthy" })
		killed := time.Now()
		_ = syscall.Kill(p.Cmd.Process.Pid, syscall.SIGKILL) // beatwrap: no final beat
		seen, a := until(b, w, id, 15*time.Second, func(a monitor.Agent) bool { return a.State == monitor.Failed })
		total += seen.Sub(killed)
		late += seen.Sub(time.UnixMilli(a.LastHeartbeat).Add(missed * interval))
		_ = syscall.Kill(a.PID, syscall.SIGKILL) // the orphaned child
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-kill-to-failed")
	b.ReportMetric(float64((missed * interval).Milliseconds()), "ms-configured-timeout")
	b.ReportMetric(float64(late.Milliseconds())/float64(b.N), "ms-after-deadline")
}

// BenchmarkStallDetection: the child reports once and hangs, alive.
func BenchmarkStallDetection(b *testing.B) {
	redis, ns := testutil.RedisURL(b), testutil.Namespace(b)
	w := benchWatch(b, redis, ns)
	bin := testutil.Binary(b, "cmd/beatwrap")
	const stallTimeout = 2 * time.Second
	var total time.Duration
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("stall-%d", i)
		stamp := filepath.Join(b.TempDir(), "report")
		script := fmt.Sprintf(`"%s" report --task work --active 1 && date +%%s%%N > %s; sleep 600`, bin, stamp)
		p := testutil.StartProc(b, bin, nil, "--redis", redis, "--namespace", ns, "--id", id, "--interval", "1s",
			"--stall-timeout", stallTimeout.String(), "--", "sh", "-c", script)
		seen, _ := until(b, w, id, 15*time.Second, func(a monitor.Agent) bool { return a.State == monitor.Stalled })
		total += seen.Sub(readStamp(b, stamp))
		p.Stop()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-report-to-stalled")
	b.ReportMetric(float64(stallTimeout.Milliseconds()), "ms-stall-timeout")
}

// BenchmarkRecoveryRestart: from failure declared to the container running
// again, through the Docker Engine API; 2s of it is the settle time that
// lets the brake judge agents failing together.
func BenchmarkRecoveryRestart(b *testing.B) {
	f := newFixture(b)
	w := f.watch()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("rec-%d", i)
		cid := f.agent(id, true)
		w.waitState(b, id, monitor.Healthy, 20*time.Second)
		killAgent(b, cid)
		failed := w.waitState(b, id, monitor.Failed, 10*time.Second)
		w.waitState(b, id, monitor.Healthy, 30*time.Second)
		total += startedAt(b, cid).Sub(time.UnixMilli(failed.StateSince))
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-failed-to-running")
}
