package monitor

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// realisticBeat is a beat as beatwrap sends it for agent i; each string is its
// own allocation, as JSON decoding makes it.
func realisticBeat(i int) wire.Beat {
	p := 40.0
	return wire.Beat{
		AgentID:      fmt.Sprintf("agent-%06d", i),
		AgentType:    string([]byte("summariser")),
		Timestamp:    1764000000000,
		Sequence:     1,
		Status:       wire.Status([]byte("healthy")),
		Metrics:      wire.Metrics{CPUPercent: 12.5, MemoryMB: 310, ActiveTasks: 1, QueueDepth: 7, TokensUsedThisHour: 18500},
		CurrentTask:  fmt.Sprintf("summarise ticket %013d", i), // 30 bytes
		TaskProgress: &p,
		IntervalMs:   30000,
		MissedBeats:  3,
		Host:         fmt.Sprintf("node-%d", i%8),
		PID:          4711 + i%1000,
	}
}

func fleet(n int) []wire.Beat {
	beats := make([]wire.Beat, n)
	for i := range beats {
		beats[i] = realisticBeat(i)
	}
	return beats
}

// BenchmarkObserve is one beat of an agent the monitor already knows.
func BenchmarkObserve(b *testing.B) {
	const n = 10000
	m := New(Config{})
	beats := fleet(n)
	now := time.Unix(1764000000, 0)
	for i := range beats {
		m.Observe(beats[i], now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bt := &beats[i%n]
		bt.Sequence++
		now = now.Add(time.Microsecond)
		m.Observe(*bt, now)
	}
}

// BenchmarkObserveParallel is BenchmarkObserve from GOMAXPROCS goroutines,
// each beating its own agents.
func BenchmarkObserveParallel(b *testing.B) {
	const n = 10000
	m := New(Config{})
	beats := fleet(n)
	start := time.Unix(1764000000, 0)
	for i := range beats {
		m.Observe(beats[i], start)
	}
	var next int64
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		<-mu
		lo := int(next)
		next += 1000
		mu <- struct{}{}
		own := make([]wire.Beat, 1000)
		for j := range own {
			own[j] = beats[(lo+j)%n]
		}
		now := start
		for i := 0; pb.Next(); i++ {
			bt := &own[i%len(own)]
			bt.Sequence++
			now = now.Add(time.Microsecond)
			m.Observe(*bt, now)
		}
	})
}

// BenchmarkFleet is a fleet beating at 50,000 beats/s in total, swept every
// simulated second, at several sizes: ns/op is the cost of one beat with
// its share of the sweeps.
func BenchmarkFleet(b *testing.B) {
	for _, n := range []int{1e4, 1e5, 1e6} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			const rate = 50000
			iv := time.Duration(n) * time.Second / rate
			m := New(Config{})
			beats := fleet(n)
			start := time.Unix(1764000000, 0)
			step := time.Second / rate
			for i := range beats {
				beats[i].IntervalMs = iv.Milliseconds()
				m.Observe(beats[i], start.Add(time.Duration(i)*step))
			}
			now := start.Add(time.Duration(n) * step)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bt := &beats[i%n]
				bt.Sequence++
				now = now.Add(step)
				m.Observe(*bt, now)
				if i%rate == rate-1 {
					if got := m.Sweep(now); len(got) != 0 {
						b.Fatalf("sweep found %d transitions in a fleet that beats on time", len(got))
					}
				}
			}
		})
	}
}

// BenchmarkSweep sweeps a fleet where 10 agents are overdue: its cost should
// not grow with the fleet. The fleet beats with a long interval; ten agents
// of a pool, with the shortest interval, beat before each sweep (not timed)
// and are failed by it.
func BenchmarkSweep(b *testing.B) {
	for _, n := range []int{1e4, 1e5, 1e6} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			m := New(Config{})
			beats := fleet(n)
			start := time.Unix(1764000000, 0)
			for i := range beats {
				beats[i].IntervalMs = int64(maxInterval / time.Millisecond)
				m.Observe(beats[i], start)
			}
			pool := make([]wire.Beat, 1000)
			for i := range pool {
				pool[i] = realisticBeat(n + i)
				pool[i].IntervalMs = int64(MinInterval / time.Millisecond)
				m.Observe(pool[i], start)
			}
			now := start
			m.Sweep(now.Add(time.Second)) // the whole pool fails
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				now = now.Add(time.Millisecond)
				for j := range 10 {
					bt := &pool[(i*10+j)%len(pool)]
					bt.Sequence++
					m.Observe(*bt, now)
				}
				b.StartTimer()
				if got := m.Sweep(now.Add(time.Second)); len(got) != 10 {
					b.Fatalf("sweep found %d transitions, want 10", len(got))
				}
			}
		})
	}
}

// BenchmarkMemory measures the watcher's heap per agent for a million agents
// with realistic beats.
func BenchmarkMemory(b *testing.B) {
	const n = 1000000
	for i := 0; i < b.N; i++ {
		perAgent := heapPerAgent(n)
		b.ReportMetric(perAgent, "B/agent")
	}
}

// heapPerAgent registers n agents and returns the heap they take, per agent.
func heapPerAgent(n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := New(Config{})
	now := time.Unix(1764000000, 0)
	for i := range n {
		m.Observe(realisticBeat(i), now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(m)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}
