package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestStrayKeysDoNotStopTheRebuild: someone who can write to the fleet's
// Redis leaves a string at agent:poison and a hash whose status is "pwned"
// and whose pid and restarts are out of range. A restarted beatwatch still
// rebuilds its view: the stray key is skipped, counted and logged once, the
// bad fields are refused naming them, and the good agents are back.
func TestStrayKeysDoNotStopTheRebuild(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	rc := redisClient(t, url)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	p := rc.Pipeline()
	for i := range 3 {
		p.HSet(ctx, fmt.Sprintf("%s:agent:real-%d", ns, i), "type", "t", "status", "healthy", "pid", "42",
			"registeredAt", now-10000, "lastHeartbeat", now, "intervalMs", "60000", "sequence", "9")
	}
	p.HSet(ctx, ns+":agent:pwned", "type", "t", "status", "pwned", "pid", "99999999999",
		"restarts", "9223372036854775807", "lastHeartbeat", now, "intervalMs", "60000")
	p.Set(ctx, ns+":agent:poison", "not a hash", 0)
	p.Set(ctx, ns+":agent:real-0:checkpoint", `{"step":1}`, 0)
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	w := startRedisWatcher(t, url, ns)
	line := w.waitLog("view rebuilt from redis", 10*time.Second)
	if n, _ := line["agents"].(float64); n != 4 {
		t.Errorf("view rebuilt with %v agents, want 4: %v", line["agents"], line)
	}
	for i := range 3 {
		if a, ok := w.agent(fmt.Sprintf("real-%d", i)); !ok || a.State != monitor.Healthy || a.PID != 42 {
			t.Errorf("real-%d = %+v, %v; want restored healthy", i, a, ok)
		}
	}
	skipped := w.logLines("keys that are not agent hashes skipped")
	if len(skipped) != 1 || skipped[0]["key"] != ns+":agent:poison" {
		t.Errorf("skipped keys logged %d times: %v, want once naming %s:agent:poison", len(skipped), skipped, ns)
	}
	if got := sum(w.metrics(), "beatwatch_redis_keys_skipped_total"); got != 1 {
		t.Errorf("beatwatch_redis_keys_skipped_total = %v, want 1", got)
	}
	refused := w.logLines("agent hash fields refused; the agent is restored without them")
	if len(refused) != 1 || refused[0]["agent"] != "pwned" {
		t.Fatalf("refused hash fields logged: %v, want one line for pwned", refused)
	}
	msg, _ := refused[0]["error"].(string)
	for _, field := range []string{"status", "pwned", "pid", "restarts"} {
		if !strings.Contains(msg, field) {
			t.Errorf("refusal %q does not name %s", msg, field)
		}
	}
	if a, ok := w.agent("pwned"); !ok || a.Status == "pwned" || a.PID != 0 || a.Restarts != 0 {
		t.Errorf("pwned = %+v, %v; want restored without its bad fields", a, ok)
	}
}
