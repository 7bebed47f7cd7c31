package e2e

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil/dockerd"
)

// BenchmarkRecoveryPerEngine times what a user waits for after a failure
// is declared: until the agent's container runs again, on the system's
// engine (A) and on a second one (B, reached by its own replica), for an
// agent that crashed (its process SIGKILLed: beatwrap says so at once) and
// for one frozen (beatwrap, PID 1 of the container, SIGSTOPped: it goes
// silent). Each agent has a 10s --grace. Run it with
//
//	go test -run '^$' -bench RecoveryPerEngine -benchtime 3x ./e2e/
//
// 2s of each figure is the settle time that lets the brake judge agents
// failing together. With BEATWRAP_BASELINE_BEATWATCH set to a beatwatch
// binary built from an earlier commit, each case runs with it too
// (watcher=baseline), side by side in the same run.
func BenchmarkRecoveryPerEngine(b *testing.B) {
	watchers := []string{""}
	if bin := os.Getenv("BEATWRAP_BASELINE_BEATWATCH"); bin != "" {
		watchers = append(watchers, bin)
	}
	for _, engine := range []string{"A", "B"} {
		for _, failure := range []string{"crashed", "frozen"} {
			for _, bin := range watchers {
				name := "engine=" + engine + "/" + failure + "/watcher=this"
				if bin != "" {
					name = "engine=" + engine + "/" + failure + "/watcher=baseline"
				}
				b.Run(name, func(b *testing.B) { benchRecovery(b, engine, failure, bin) })
			}
		}
	}
}

func benchRecovery(b *testing.B, engine, failure, beatwatch string) {
	f := newFixture(b)
	f.beatwatch = beatwatch
	h := &hosts{fixture: f, hostA: os.Getenv("DOCKER_HOST")}
	if h.hostA == "" {
		h.hostA = "unix:///var/run/docker.sock"
	}
	host := h.hostA
	if engine == "B" {
		h.b = dockerd.Start(b)
		h.b.LoadImage(b, f.image)
		host = h.b.Host()
	}
	w := f.watch("--docker-host", host, "--log-level", "warn")
	var total time.Duration
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("%s-%s-%d", engine, failure, i)
		cid := h.agentOn(h.b, id, "10s")
		w.waitState(b, id, monitor.Healthy, 30*time.Second)
		pid := h.pid1(h.b, cid)
		if failure == "frozen" {
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				b.Fatal(err)
			}
		} else {
			killChildren(b, pid)
		}
		failed := w.waitState(b, id, monitor.Failed, 10*time.Second)
		w.waitState(b, id, monitor.Healthy, 60*time.Second)
		total += h.startedAt(h.b, cid).Sub(time.UnixMilli(failed.StateSince))
		h.docker(h.b, "rm", "-f", cid)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-failed-to-running")
	b.ReportMetric(0, "ns/op")
}
