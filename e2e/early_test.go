package e2e

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestEarlyDeathIsSeen: an agent whose beatwrap dies (SIGKILL) before its
// second beat is known to beatwatch from its first one and declared failed,
// not left unseen. Its interval is 2 s, so it must appear before any
// periodic beat: from the beat its registration publishes.
func TestEarlyDeathIsSeen(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	w := startReplica(t, url, ns, 1)
	testutil.Eventually(t, 15*time.Second, "beatwatch watches the beats (/healthz 200)", func() bool {
		resp, err := http.Get(w.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	bin := testutil.Binary(t, "cmd/beatwrap")
	started := time.Now()
	agent := testutil.StartProc(t, bin, nil,
		"--redis", url, "--namespace", ns, "--id", "early-1",
		"--interval", "2s", "--missed-beats", "2", "--log-format", "json", "--", "sleep", "120")
	testutil.Eventually(t, 1500*time.Millisecond, "early-1 known to beatwatch before its first periodic beat (2 s)", func() bool {
		return w.state(t, "early-1") != ""
	})
	t.Logf("early-1 known %v after its start", time.Since(started).Round(10*time.Millisecond))
	agent.Signal(syscall.SIGKILL)
	killed := time.Now()
	testutil.Eventually(t, 20*time.Second, "early-1 failed after its beatwrap was killed", func() bool {
		return w.state(t, "early-1") == monitor.Failed
	})
	t.Logf("early-1 failed %v after the kill (timeout 2 × 2 s)", time.Since(killed).Round(10*time.Millisecond))
}
