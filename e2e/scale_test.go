package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// These tests scale out on real Redis topologies started by the test
// (testutil.StartCluster, testutil.StartSentinels), with the real beatwrap
// and beatwatch binaries. Agents are plain processes (sleep under beatwrap):
// what is under test is where their beats go and who judges them, not
// Docker. Recovery is off; failures are counted from beatwatch's metrics.

// replica is one beatwatch process of a sharded fleet.
type replica struct {
	proc *testutil.Proc
	base string
}

func startReplica(t *testing.T, redisURL, ns string, shards int) *replica {
	t.Helper()
	port := testutil.FreePort(t)
	r := &replica{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	r.proc = testutil.StartProc(t, testutil.Binary(t, "cmd/beatwatch"), nil,
		"--redis", redisURL, "--namespace", ns, "--shards", strconv.Itoa(shards),
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--check-interval", "100ms",
		"--recover", "none", "--log-format", "json")
	return r
}

// startAgent runs sleep under beatwrap, beating every 500ms (timeout 1.5s).
func startAgent(t *testing.T, redisURL, ns, id string, shards int) *testutil.Proc {
	t.Helper()
	return testutil.StartProc(t, testutil.Binary(t, "cmd/beatwrap"), nil,
		"--redis", redisURL, "--namespace", ns, "--shards", strconv.Itoa(shards), "--id", id,
		"--interval", "500ms", "--missed-beats", "3", "--grace", "1s", "--log-format", "json", "--", "sleep", "120")
}

func (r *replica) summary(t *testing.T, query string) (dashboard.Summary, bool) {
	t.Helper()
	var sum dashboard.Summary
	resp, err := http.Get(r.base + "/health/agents" + query)
	if err != nil {
		return sum, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&sum) != nil {
		return sum, false
	}
	return sum, true
}

func (r *replica) state(t *testing.T, id string) monitor.State {
	t.Helper()
	resp, err := http.Get(r.base + "/health/agents/" + id)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var a monitor.Agent
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&a) != nil {
		return ""
	}
	return a.State
}

// metrics sums the samples of each metric name (and of name{from,to} for
// transitions) on the replica's /metrics.
func (r *replica) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 && !strings.HasPrefix(name, "beatwatch_transitions_total") {
			name = name[:j]
		}
		out[name] += v
	}
	return out
}

// detections counts the failures a replica declared: transitions to failed
// other than a recovery's end.
func (r *replica) detections(t *testing.T) float64 {
	n := 0.0
	for k, v := range r.metrics(t) {
		if strings.HasPrefix(k, "beatwatch_transitions_total") && strings.Contains(k, `to="failed"`) && !strings.Contains(k, `from="recovering"`) {
			n += v
		}
	}
	return n
}

type replicasView struct {
	Self     string `json:"self"`
	Replicas []struct {
		ID     string   `json:"id"`
		API    string   `json:"api"`
		Shards []string `json:"shards"`
	} `json:"replicas"`
}

// replicas is GET /v1/replicas; empty when the replica does not answer.
func (r *replica) replicas(t *testing.T) replicasView {
	t.Helper()
	var v replicasView
	resp, err := http.Get(r.base + "/v1/replicas")
	if err != nil {
		return v
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return v
}

// idsOnEveryShard picks one agent id per shard.
func idsOnEveryShard(prefix string, shards int) []string {
	ids := make([]string, shards)
	for i, left := 0, shards; left > 0; i++ {
		id := prefix + strconv.Itoa(i)
		if s := wire.Shard(id, shards); ids[s] == "" {
			ids[s] = id
			left--
		}
	}
	return ids
}

// TestClusterReplicasShareTheShards runs three beatwatch replicas on a
// 3-master Cluster (each master with a replica) and an agent on each of 12
// shards. Each replica reads about a third of the beats and answers for the
// whole fleet; a replica killed together with one agent of its shards has
// its shards taken over, and that agent (only) is declared failed; a Redis
// master killed under the fleet fails nobody.
func TestClusterReplicasShareTheShards(t *testing.T) {
	c := testutil.StartCluster(t, 3, 1)
	ns := testutil.Namespace(t)
	const shards = 12
	var reps []*replica
	for range 3 {
		reps = append(reps, startReplica(t, c.URL(), ns, shards))
	}
	ids := idsOnEveryShard("agent-", shards)
	agents := map[string]*testutil.Proc{}
	for _, id := range ids {
		agents[id] = startAgent(t, c.URL(), ns, id, shards)
	}
	testutil.Eventually(t, 30*time.Second, "every replica answers for the whole fleet: 12 agents healthy", func() bool {
		for _, r := range reps {
			if sum, ok := r.summary(t, ""); !ok || sum.Total != shards || sum.Healthy != shards {
				return false
			}
		}
		return true
	})
	t.Run("each replica reads a third", func(t *testing.T) {
		before := make([]float64, len(reps))
		for i, r := range reps {
			before[i] = r.metrics(t)["beatwatch_beats_received_total"]
		}
		time.Sleep(3 * time.Second) // a window of beats to count, not a wait for an event
		var got []float64
		total := 0.0
		for i, r := range reps {
			d := r.metrics(t)["beatwatch_beats_received_total"] - before[i]
			got = append(got, d)
			total += d
		}
		for i, d := range got {
			if share := d / total; share < 0.2 || share > 0.5 {
				t.Errorf("replica %d received %.0f of %.0f beats (%.0f%%), want about a third", i, d, total, 100*share)
			}
		}
		t.Logf("beats received per replica in 3s: %v", got)
	})
	t.Run("pages of the whole fleet, from any replica", func(t *testing.T) {
		for _, r := range reps {
			var got []string
			cursor := ""
			for page := 0; page < 10; page++ {
				sum, ok := r.summary(t, "?limit=5&cursor="+cursor)
				if !ok {
					t.Fatalf("%s: GET /health/agents?limit=5 failed", r.base)
				}
				if sum.Total != shards || len(sum.Agents) > 5 {
					t.Fatalf("%s: page of %d agents, total %d; want at most 5 of %d", r.base, len(sum.Agents), sum.Total, shards)
				}
				for _, a := range sum.Agents {
					got = append(got, a.AgentID)
				}
				if sum.Next == "" {
					break
				}
				cursor = sum.Next
			}
			want := slices.Clone(ids)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: pages of 5 gave %v, want every agent once, by id: %v", r.base, got, want)
			}
		}
	})
	t.Run("one agent by id, from any replica", func(t *testing.T) {
		for _, r := range reps {
			for _, id := range ids[:3] {
				if st := r.state(t, id); st != monitor.Healthy {
					t.Errorf("%s: GET /health/agents/%s: state %q, want healthy", r.base, id, st)
				}
			}
		}
	})

	// Kill one replica and, at the same moment, one agent whose shard it
	// reads.
	view := reps[0].replicas(t)
	if len(view.Replicas) != 3 {
		t.Fatalf("GET /v1/replicas lists %d replicas, want 3: %+v", len(view.Replicas), view)
	}
	victim := view.Replicas[0]
	var dead *replica
	for _, r := range reps {
		if r.base == victim.API {
			dead = r
		}
	}
	var killed string
	for _, id := range ids {
		if slices.Contains(victim.Shards, strconv.Itoa(wire.Shard(id, shards))) {
			killed = id
			break
		}
	}
	if dead == nil || killed == "" {
		t.Fatalf("replica %s (%s) holds no agent's shard: %+v", victim.ID, victim.API, view)
	}
	var alive []*replica
	for _, r := range reps {
		if r != dead {
			alive = append(alive, r)
		}
	}
	killedAt := time.Now()
	dead.proc.Signal(syscall.SIGKILL)
	agents[killed].Signal(syscall.SIGKILL)
	t.Run("a dead replica's agent is still failed", func(t *testing.T) {
		// Takeover within 2.5s, then the agent's 1.5s timeout from it:
		// about 4s on a quiet machine (logged); the bound is for a loaded one.
		defer func() {
			if t.Failed() {
				for _, r := range alive {
					t.Logf("replica %s stderr:\n%s", r.base, r.proc.Stderr)
				}
			}
		}()
		testutil.Eventually(t, 30*time.Second, killed+" failed, seen from a live replica", func() bool {
			return alive[0].state(t, killed) == monitor.Failed
		})
		t.Logf("%s failed %v after its replica and it were killed", killed, time.Since(killedAt).Round(10*time.Millisecond))
		for _, r := range alive {
			sum, ok := r.summary(t, "")
			if !ok || sum.Total != shards || sum.Healthy != shards-1 || sum.Failed != 1 {
				t.Errorf("%s: fleet %+v, want %d agents, %d healthy, 1 failed", r.base, sum, shards, shards-1)
			}
		}
		n := 0.0
		for _, r := range alive {
			n += r.detections(t)
		}
		if n != 1 {
			t.Errorf("live replicas declared %v failures, want 1 (%s)", n, killed)
		}
	})
	t.Run("a dead Redis master fails nobody", func(t *testing.T) {
		before := 0.0
		for _, r := range alive {
			before += r.detections(t)
		}
		master := c.Masters()[0]
		c.Node(master).Stop()
		stopped := time.Now()
		c.WaitOK(30 * time.Second)
		// Beats flow again through every shard: each live agent beats
		// after the failover.
		testutil.Eventually(t, 20*time.Second, "every live agent beats after the failover", func() bool {
			sum, ok := alive[0].summary(t, "")
			if !ok {
				return false
			}
			for _, a := range sum.Agents {
				if a.AgentID != killed && time.UnixMilli(a.LastHeartbeat).Before(stopped.Add(time.Second)) {
					return false
				}
			}
			return true
		})
		time.Sleep(2 * time.Second) // more than a timeout after sight came back
		after := 0.0
		for _, r := range alive {
			after += r.detections(t)
		}
		if after != before {
			t.Errorf("%v agents declared failed after a Redis master died, want none", after-before)
		}
		for _, id := range ids {
			if id == killed {
				continue
			}
			select {
			case <-agents[id].Done():
				t.Errorf("beatwrap of %s exited during the failover; stderr:\n%s", id, agents[id].Stderr)
			default:
			}
		}
	})
}

// TestSentinelFailoverKeepsTheFleet runs a beatwatch and four agents on a
// master watched by three sentinels, and kills the master: beats flow again
// after the failover, no agent is declared failed (the watcher was blind, the
// agents were not dead), an agent stopped once the replica is promoted still
// has its stop recorded, and no child is disturbed.
func TestSentinelFailoverKeepsTheFleet(t *testing.T) {
	s := testutil.StartSentinels(t)
	ns := testutil.Namespace(t)
	const shards = 4
	w := startReplica(t, s.URL(), ns, shards)
	ids := idsOnEveryShard("sent-", shards)
	agents := map[string]*testutil.Proc{}
	for _, id := range ids {
		agents[id] = startAgent(t, s.URL(), ns, id, shards)
	}
	var pids map[string]int
	testutil.Eventually(t, 30*time.Second, "4 agents healthy", func() bool {
		sum, ok := w.summary(t, "")
		if !ok || sum.Healthy != shards {
			return false
		}
		pids = map[string]int{}
		for _, a := range sum.Agents {
			pids[a.AgentID] = a.PID
		}
		return true
	})

	old := s.Master()
	old.Stop()
	stopped := time.Now()
	s.WaitFailover(old, 30*time.Second)
	// Stopped now, its clients still believe in the old master: the final
	// beat must find the new one.
	agents[ids[0]].Signal(syscall.SIGTERM)
	if code := agents[ids[0]].Wait(15 * time.Second); code != 128+int(syscall.SIGTERM) {
		t.Errorf("stopped agent exited %d, want %d (its child ended by SIGTERM)", code, 128+int(syscall.SIGTERM))
	}
	t.Cleanup(func() {
		if t.Failed() {
			sum, _ := w.summary(t, "")
			t.Logf("fleet: %+v\nbeatwatch's log:\n%s", sum, w.proc.Stderr)
		}
	})
	testutil.Eventually(t, 20*time.Second, "the stopped agent is stopped and the others beat after the failover", func() bool {
		sum, ok := w.summary(t, "")
		if !ok {
			return false
		}
		for _, a := range sum.Agents {
			if a.AgentID == ids[0] {
				if a.State != monitor.Stopped {
					return false
				}
				continue
			}
			if a.State != monitor.Healthy || time.UnixMilli(a.LastHeartbeat).Before(stopped.Add(time.Second)) {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // more than a timeout after sight came back
	if n := w.detections(t); n != 0 {
		t.Errorf("%v agents declared failed across a Sentinel failover, want none", n)
	}
	sum, _ := w.summary(t, "")
	for _, a := range sum.Agents {
		if a.AgentID != ids[0] && (a.PID != pids[a.AgentID] || a.Restarts != 0) {
			t.Errorf("%s: pid %d (was %d), %d restarts: its child was disturbed", a.AgentID, a.PID, pids[a.AgentID], a.Restarts)
		}
	}
}

// TestShardsMismatchIsSaid runs beatwatch with --shards 4 and agents with
// --shards 3 and 8: beats that come on a channel their agent does not hash to
// are said once by the watcher and counted; beats on channels no watcher
// reads are said once by beatwrap.
func TestShardsMismatchIsSaid(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	w := startReplica(t, url, ns, 4)
	testutil.Eventually(t, 15*time.Second, "beatwatch reads its shards", func() bool {
		v := w.replicas(t)
		return len(v.Replicas) == 1 && len(v.Replicas[0].Shards) == 5
	})
	// With 3 shards, an agent on shard 1 whose 4-shard channel is another.
	var three, eight string
	for i := 0; three == "" || eight == ""; i++ {
		id := "mis-" + strconv.Itoa(i)
		if three == "" && wire.Shard(id, 3) != wire.Shard(id, 4) {
			three = id
		}
		if eight == "" && id != three && wire.Shard(id, 8) >= 4 {
			eight = id
		}
	}
	a3 := startAgent(t, url, ns, three, 3)
	a8 := startAgent(t, url, ns, eight, 8)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("beatwatch:\n%s\nbeatwrap --shards 3:\n%s\nbeatwrap --shards 8:\n%s", w.proc.Stderr, a3.Stderr, a8.Stderr)
		}
	})
	testutil.Eventually(t, 15*time.Second, "beatwatch counts misrouted beats and says so once", func() bool {
		return w.metrics(t)["beatwatch_beats_misrouted_total"] >= 3 &&
			strings.Contains(w.proc.Stderr.String(), "must be given the same --shards")
	})
	testutil.Eventually(t, 15*time.Second, "beatwrap says its beats reach no beatwatch", func() bool {
		return strings.Contains(a8.Stderr.String(), "no beatwatch receives this agent's beats")
	})
	time.Sleep(time.Second) // more misrouted beats: still said once
	if n := strings.Count(w.proc.Stderr.String(), "must be given the same --shards"); n != 1 {
		t.Errorf("the mismatch was said %d times, want once:\n%s", n, w.proc.Stderr)
	}
	if n := strings.Count(a8.Stderr.String(), "no beatwatch receives"); n != 1 {
		t.Errorf("beatwrap said %d times that nobody receives its beats, want once", n)
	}
	if strings.Contains(a3.Stderr.String(), "no beatwatch receives") {
		t.Errorf("beatwrap with 3 shards says nobody receives its beats, but its channel is read:\n%s", a3.Stderr)
	}
}

// TestClusterDownAtStart starts beatwatch on a Cluster whose nodes do not
// answer: it keeps running, blind, says so once, fails nobody, and serves
// /healthz as degraded.
func TestClusterDownAtStart(t *testing.T) {
	url := fmt.Sprintf("redis://127.0.0.1:%d?addr=127.0.0.1:%d&addr=127.0.0.1:%d", testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t))
	w := startReplica(t, url, testutil.Namespace(t), 4)
	testutil.Eventually(t, 15*time.Second, "/healthz says beatwatch does not watch beats", func() bool {
		resp, err := http.Get(w.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	time.Sleep(3 * time.Second) // several renewal attempts: still one line
	select {
	case <-w.proc.Done():
		t.Fatalf("beatwatch exited with a Cluster down at start; stderr:\n%s", w.proc.Stderr)
	default:
	}
	if n := strings.Count(w.proc.Stderr.String(), `"level":"WARN"`) + strings.Count(w.proc.Stderr.String(), `"level":"ERROR"`); n != 1 {
		t.Errorf("%d warnings or errors in 3s of a Cluster down, want one line:\n%s", n, w.proc.Stderr)
	}
	if n := w.detections(t); n != 0 {
		t.Errorf("%v agents failed while blind", n)
	}
}
