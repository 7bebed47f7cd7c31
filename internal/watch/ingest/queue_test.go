package ingest

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// TestQueueBoundsBytes: add waits while more than MaxBytes wait to be
// decoded, and goes on once the workers take them.
func TestQueueBoundsBytes(t *testing.T) {
	release := make(chan struct{})
	var ingested atomic.Int64
	q := New(1, func(p []byte, _ time.Time) error {
		<-release
		ingested.Add(1)
		return nil
	}, time.Now)
	big := make([]byte, 1<<20)
	added := make(chan int, 1)
	go func() {
		n := 0
		for range MaxBytes>>20 + 8 {
			q.Add(big)
			n++
		}
		added <- n
	}()
	select {
	case n := <-added:
		t.Fatalf("add took %d MiB with no worker running, want it to wait past %d MiB", n, MaxBytes>>20)
	case <-time.After(300 * time.Millisecond):
	}
	if used := q.used.Load(); used > MaxBytes+(1<<20)+jobCost {
		t.Errorf("%d bytes waiting, want at most %d", used, MaxBytes+(1<<20))
	}
	close(release)
	select {
	case <-added:
	case <-time.After(10 * time.Second):
		t.Fatal("add still waits after the worker ran")
	}
	q.Close()
	if got := ingested.Load(); got != MaxBytes>>20+8 {
		t.Errorf("%d beats ingested, want %d", got, MaxBytes>>20+8)
	}
}

func TestShardOf(t *testing.T) {
	tests := []struct {
		name    string
		a, b    string
		same    bool
		shardA0 bool // a goes to shard 0
	}{
		{"same agent, other fields", `{"agentId":"a-1","sequence":1}`, `{"sequence":2,"agentId":"a-1","status":"busy"}`, true, false},
		{"no agentId", `{"agentType":"x"}`, `not json`, true, true},
		{"oversize", `{"agentId":"a-1","pad":"` + strings.Repeat("x", wire.MaxBeatSize) + `"}`, `{}`, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := shardOf([]byte(tt.a), 8), shardOf([]byte(tt.b), 8)
			if got := a == b; got != tt.same {
				t.Errorf("same shard = %v (%d, %d), want %v", got, a, b, tt.same)
			}
			if tt.shardA0 && a != 0 {
				t.Errorf("shard = %d, want 0", a)
			}
		})
	}
	t.Run("spread", func(t *testing.T) {
		const n, shards = 10000, 4
		var count [shards]int
		for i := range n {
			count[shardOf([]byte(fmt.Sprintf(`{"agentId":"agent-%06d"}`, i)), shards)]++
		}
		for s, c := range count {
			if c < n/shards*8/10 {
				t.Errorf("shard %d got %d of %d agents, want about %d", s, c, n, n/shards)
			}
		}
	})
}

func TestQueueKeepsEachAgentsOrder(t *testing.T) {
	const agents, beats = 50, 200
	var mu sync.Mutex
	seen := map[string][]uint64{}
	recv := map[string]time.Time{}
	var errs []string
	q := New(4, func(p []byte, at time.Time) error {
		var b wire.Beat
		if err := json.Unmarshal(p, &b); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if at.Before(recv[b.AgentID]) {
			errs = append(errs, fmt.Sprintf("%s: receive time went back", b.AgentID))
		}
		recv[b.AgentID] = at
		seen[b.AgentID] = append(seen[b.AgentID], b.Sequence)
		return nil
	}, time.Now)
	for seq := 1; seq <= beats; seq++ {
		for a := range agents {
			q.Add([]byte(fmt.Sprintf(`{"agentId":"a-%d","sequence":%d}`, a, seq)))
		}
	}
	q.Close() // waits for every beat added
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(seen) != agents {
		t.Fatalf("%d agents ingested, want %d", len(seen), agents)
	}
	for id, seqs := range seen {
		if len(seqs) != beats {
			t.Fatalf("%s: %d beats ingested, want %d", id, len(seqs), beats)
		}
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("%s: beat %d has sequence %d: out of order", id, i, s)
			}
		}
	}
}
