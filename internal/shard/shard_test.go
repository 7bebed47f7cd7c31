package shard

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestAssignSharesEvenlyAndMovesFew(t *testing.T) {
	live := []Replica{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	shards := []int{Seed}
	for s := range 300 {
		shards = append(shards, s)
	}
	before := Assign(shards, live)
	per := map[string]int{}
	for _, r := range before {
		per[r.ID]++
	}
	for _, r := range live {
		if per[r.ID] < 99 || per[r.ID] > 101 {
			t.Errorf("replica %s has %d of %d shards, want about 100 and at most 101", r.ID, per[r.ID], len(shards))
		}
	}
	if again := Assign(shards, []Replica{{ID: "c"}, {ID: "a"}, {ID: "b"}}); fmt.Sprint(again) != fmt.Sprint(before) {
		t.Error("the same live replicas in another order give another assignment")
	}
	// b leaves: its shards move, and few others.
	after := Assign(shards, []Replica{{ID: "a"}, {ID: "c"}})
	moved := 0
	for _, s := range shards {
		if before[s].ID != "b" && after[s] != before[s] {
			moved++
		}
	}
	if moved > len(shards)/10 {
		t.Errorf("%d shards not b's moved when b left, want few", moved)
	}
}

// TestAssignSharesTheBeatsEvenly checks the numbered shards (the ones that
// carry beatwrap's beats) are split as evenly as they can be, whatever the
// replica ids hash to: the Seed channel never takes a numbered shard's
// place.
func TestAssignSharesTheBeatsEvenly(t *testing.T) {
	for trial := range 200 {
		n := 3 + trial%5 // replicas
		var live []Replica
		for i := range n {
			live = append(live, Replica{ID: fmt.Sprintf("replica-%d-%d", trial, i)})
		}
		for _, count := range []int{n - 1, 12, 13, 64} {
			shards := []int{Seed}
			for s := range count {
				shards = append(shards, s)
			}
			got := Assign(shards, live)
			if len(got) != len(shards) {
				t.Fatalf("%d replicas, %d shards: %d assigned", n, count, len(got))
			}
			per := map[string]int{}
			for s, r := range got {
				if s != Seed {
					per[r.ID]++
				}
			}
			lo, hi := count/n, (count+n-1)/n
			for _, r := range live {
				if per[r.ID] < lo || per[r.ID] > hi {
					t.Fatalf("%d replicas, %d shards: %s reads %d numbered shards, want %d to %d (%v)", n, count, r.ID, per[r.ID], lo, hi, per)
				}
			}
		}
	}
}

// memRegistry is a registry in memory: the coordinator's contract with Redis
// without Redis (the Redis side has its own test in internal/store/redisfleet).
type memRegistry struct {
	mu   sync.Mutex
	live map[string]Replica
}

func (m *memRegistry) Heartbeat(_ context.Context, r Replica, _ time.Duration) ([]Replica, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live[r.ID] = r
	var out []Replica
	for _, r := range m.live {
		out = append(out, r)
	}
	return out, nil
}

func (m *memRegistry) Deregister(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.live, id)
	return nil
}

type held struct {
	mu sync.Mutex
	s  map[int]bool
}

func (h *held) Take(s []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range s {
		h.s[x] = true
	}
}

func (h *held) Release(s []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range s {
		delete(h.s, x)
	}
}

func (h *held) list() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int
	for x := range h.s {
		out = append(out, x)
	}
	slices.Sort(out)
	return out
}

func TestReplicasShareEveryShardOnce(t *testing.T) {
	reg := &memRegistry{live: map[string]Replica{}}
	const shards = 8
	hs := make([]*held, 3)
	cancels := make([]context.CancelFunc, 3)
	dones := make([]chan struct{}, 3)
	for i := range hs {
		hs[i] = &held{s: map[int]bool{}}
		c := New(Config{Self: Replica{ID: fmt.Sprintf("r%d", i)}, Shards: shards, Registry: reg, Handler: hs[i], Every: 20 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i], dones[i] = cancel, make(chan struct{})
		go func() { defer close(dones[i]); _ = c.Run(ctx) }()
	}
	defer func() {
		for i := range cancels {
			cancels[i]()
			<-dones[i]
		}
	}()
	covered := func(hs []*held) bool {
		count := map[int]int{}
		for _, h := range hs {
			for _, s := range h.list() {
				count[s]++
			}
		}
		for s := Seed; s < shards; s++ {
			if count[s] != 1 {
				return false
			}
		}
		return len(count) == shards+1
	}
	deadline := time.Now().Add(5 * time.Second)
	for !covered(hs) {
		if time.Now().After(deadline) {
			t.Fatalf("shards not shared once each within 5s: %v %v %v", hs[0].list(), hs[1].list(), hs[2].list())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// r1 stops: it releases everything and deregisters; the others take
	// its shards.
	cancels[1]()
	select {
	case <-dones[1]:
	case <-time.After(5 * time.Second):
		t.Fatal("coordinator did not stop within 5s")
	}
	if got := hs[1].list(); len(got) != 0 {
		t.Errorf("stopped replica still holds %v", got)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !covered([]*held{hs[0], hs[2]}) {
		if time.Now().After(deadline) {
			t.Fatalf("shards not taken over within 5s: %v %v", hs[0].list(), hs[2].list())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
