package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestAlertsAreCounted runs beatwatch with --alert-webhook pointing at a
// local server and no Docker Engine. Two agents exit non-zero: each is
// alerted; the webhook takes one alert and refuses the other, and
// beatwatch_alerts_total counts each delivery by event and result.
func TestAlertsAreCounted(t *testing.T) {
	var mu sync.Mutex
	received := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var doc struct {
			AgentID string `json:"agentId"`
			Event   string `json:"event"`
		}
		_ = json.NewDecoder(r.Body).Decode(&doc)
		mu.Lock()
		received[doc.AgentID+" "+doc.Event]++
		mu.Unlock()
		if doc.AgentID == "refused" {
			http.Error(w, "no such channel", http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	w := startWatcher(t, "--alert-webhook", srv.URL, "--alert-format", "json")
	for _, id := range []string{"taken", "refused"} {
		for seq, status := range []string{`"healthy"`, `"exited","exitCode":1`} {
			body := fmt.Sprintf(`{"agentId":%q,"agentType":"sh","timestamp":1,"sequence":%d,"status":%s,"intervalMs":1000,"missedBeats":3,"pid":7}`, id, seq+1, status)
			if code, got := request(t, http.MethodPost, w.base+"/v1/beats", "", []byte(body)); code != http.StatusAccepted {
				t.Fatalf("POST /v1/beats %s = %d %s, want 202", body, code, got)
			}
		}
	}
	testutil.Eventually(t, 30*time.Second, "a trigger for each agent at the webhook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return received["taken trigger"] == 1 && received["refused trigger"] == 1
	})
	sent := func() (float64, float64) {
		m := w.metrics()
		return sum(m, "beatwatch_alerts_total", `event="trigger"`, `result="sent"`),
			sum(m, "beatwatch_alerts_total", `event="trigger"`, `result="failed"`)
	}
	testutil.Eventually(t, 5*time.Second, "one alert sent and one refused, counted", func() bool {
		ok, failed := sent()
		return ok == 1 && failed == 1
	})
	// Nothing else was alerted, so nothing else is counted.
	time.Sleep(500 * time.Millisecond)
	if ok, failed := sent(); ok != 1 || failed != 1 {
		t.Errorf("beatwatch_alerts_total: trigger sent %v, failed %v; want 1 each", ok, failed)
	}
}
