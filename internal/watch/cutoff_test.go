package watch

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestRepeatedCutoffsSayChannelAndSize: an attacker on the Redis publishes,
// again and again, a message larger than a beat (100 KiB, which reaches the
// watcher and is measured) and then one larger than the watcher's pub/sub
// output buffer limit (1 MiB past a limit of 256 KiB, set small so that the
// cut-off comes at once), and Redis cuts the watcher off each time. The
// watcher logs the run once, naming the channel, the oversize messages and
// the largest, why it was cut and the settings that stop it; the cut-offs
// after the first are counted, not logged one by one.
func TestRepeatedCutoffsSayChannelAndSize(t *testing.T) {
	r := testutil.StartRedis(t) // its own: the limit is the server's
	ns := testutil.Namespace(t)
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	ctx := context.Background()
	if err := rc.ConfigSet(ctx, "client-output-buffer-limit", "pubsub 256kb 0 0").Err(); err != nil {
		t.Fatalf("set client-output-buffer-limit: %v", err)
	}
	st, err := redisfleet.NewWatcher(r.URL(), store.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var buf testutil.Buffer
	ready := make(chan string, 1)
	w := New(Config{Redis: st, Listen: "127.0.0.1:0", Log: slog.New(slog.NewJSONHandler(&buf, nil)),
		Ready: func(addr string) { ready <- addr }})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	}()
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
	case <-time.After(10 * time.Second):
		t.Fatal("watcher did not listen within 10s")
	}
	channel := ns + ":heartbeats"
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !ok() {
			select {
			case <-deadline:
				t.Fatalf("%s: not within 10s; log:\n%s", what, buf.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	const rounds = 4
	big := strings.Repeat("x", 100<<10) // over a beat's 64 KiB, under the 256 KiB limit
	huge := strings.Repeat("y", 1<<20)  // over the limit: Redis cuts the subscriber off
	for i := range rounds {
		waitFor("subscribed", func() bool {
			n, err := rc.PubSubNumSub(ctx, channel).Result()
			return !w.mon.Blind() && err == nil && n[channel] == 1
		})
		if err := rc.Publish(ctx, channel, big).Err(); err != nil {
			t.Fatal(err)
		}
		// The 100 KiB message reaches the watcher before the next one cuts
		// it off: it is measured.
		waitFor("oversize message counted", func() bool { return st.Traffic()[channel].Oversize >= int64(i+1) })
		if err := rc.Publish(ctx, channel, huge).Err(); err != nil {
			t.Fatal(err)
		}
		waitFor("cut-off counted", func() bool {
			return metric(t, base, "beatwatch_redis_subscription_lost_total") >= float64(i+1)
		})
	}
	var line map[string]any
	waitFor("the run logged", func() bool {
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, `"msg":"redis keeps cutting off the beats subscription`) {
				return json.Unmarshal([]byte(l), &line) == nil
			}
		}
		return false
	})
	logs := buf.String()
	if n := strings.Count(logs, "redis keeps cutting off the beats subscription"); n != 1 {
		t.Errorf("%d cut-offs in a row logged the run %d times, want once", rounds, n)
	}
	if n := strings.Count(logs, "redis unreachable"); n != 1 {
		t.Errorf("%d cut-offs in a row logged %d outages, want the first only", rounds, n)
	}
	if line["channel"] != channel {
		t.Errorf("the run's line names channel %v, want %s: %v", line["channel"], channel, line)
	}
	oversize, _ := line["oversize"].(string)
	if !strings.Contains(oversize, channel+": ") || !strings.Contains(oversize, "the largest 102400 bytes") {
		t.Errorf("the run's line does not say the channel and the size of the oversize messages (102400 bytes): oversize=%q", oversize)
	}
	cause, _ := line["cause"].(string)
	if !strings.Contains(cause, "262144 bytes") {
		t.Errorf("the run's line does not say what cut it off (a message over the 262144-byte limit): cause=%q", cause)
	}
	fix, _ := line["fix"].(string)
	for _, s := range []string{"proto-max-bulk-len", "ACL", "client-output-buffer-limit"} {
		if !strings.Contains(fix, s) {
			t.Errorf("the run's fix does not name %s: %q", s, fix)
		}
	}
	if got := metric(t, base, "beatwatch_redis_subscription_lost_total"); got != rounds {
		t.Errorf("beatwatch_redis_subscription_lost_total = %v, want %d", got, rounds)
	}
}
