package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// A container that restarting cannot fix is replaced by beatwatch, and the
// agent in the new container resumes from the checkpoint the old one left
// in Redis: nothing checkpointed is done twice. The agent counts to N and
// checkpoints after each number; its log is on a bind mount, which the
// replacement keeps.
func TestReplacedContainerResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.watch()
	out := t.TempDir()
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	const id, n = "counter-1", 150
	cid := testutil.Docker(t, "run", "-d", "--network", "host", "--name", f.ns+"-"+id,
		"--label", testutil.TestLabel(), "--label", "beatwatch.agent="+id, "--label", "beatwatch.recover=true",
		"-v", out+":/out", f.image, "--redis", f.redis, "--namespace", f.ns, "--id", id,
		"--interval", "200ms", "--grace", "1s", "--", "/counter", strconv.Itoa(n), "50ms", "/out/count.log")
	t.Cleanup(func() { _, _ = testutil.DockerTry("rm", "-f", cid) })
	logPath := filepath.Join(out, "count.log")
	testutil.Eventually(t, 20*time.Second, "the counter to reach 20", func() bool { return maxDone(logPath) >= 20 })

	poison := filepath.Join(t.TempDir(), "poison")
	if err := os.WriteFile(poison, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Docker(t, "cp", poison, cid+":/poison")
	killAgent(t, cid)
	w.waitState(t, id, monitor.Failed, 10*time.Second)
	done := maxDone(logPath)
	raw := redisClient(t, f.redis)
	v, err := raw.Get(context.Background(), f.ns+":agent:"+id+":checkpoint").Result()
	if err != nil {
		t.Fatalf("no checkpoint in Redis after the kill: %v", err)
	}
	var rec struct {
		Checkpoint struct{ N int } `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		t.Fatalf("checkpoint key holds %q: %v", v, err)
	}
	// beatwrap writes the last checkpoint before its final beat: at most
	// the number in flight is missing.
	if k := rec.Checkpoint.N; k < done-1 || k > done {
		t.Errorf("stored checkpoint n=%d, the agent had done %d", k, done)
	}

	a := w.waitState(t, id, monitor.Healthy, 60*time.Second)
	if a.ContainerID == cid {
		t.Fatalf("agent still runs in the poisoned container %s", cid[:12])
	}
	if m := w.recoveries(t); m["replace/ok"] != 1 {
		t.Errorf("recoveries = %v, want one replace", m)
	}
	newID := testutil.Docker(t, "ps", "-q", "--no-trunc", "--filter", "label=beatwatch.agent="+id)
	t.Cleanup(func() { _, _ = testutil.DockerTry("rm", "-f", newID) })
	testutil.Eventually(t, 30*time.Second, "the new container to count to the end", func() bool { return maxDone(logPath) >= n })
	data, _ := os.ReadFile(logPath)
	var starts []string
	times := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "start" {
			starts = append(starts, f[1])
			continue
		}
		times[line]++
	}
	if want := []string{"0", strconv.Itoa(rec.Checkpoint.N)}; strings.Join(starts, " ") != strings.Join(want, " ") {
		t.Errorf("runs started from %v, want %v (the poisoned restart never got to count)", starts, want)
	}
	for k, c := range times {
		if c > 1 {
			if i, _ := strconv.Atoi(k); i <= rec.Checkpoint.N {
				t.Errorf("%s done %d times, though checkpointed", k, c)
			}
		}
	}
}

func maxDone(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	m := 0
	for _, line := range strings.Split(string(data), "\n") {
		if k, err := strconv.Atoi(line); err == nil {
			m = max(m, k)
		}
	}
	return m
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}
