package ingest

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// Queue takes beats from the subscription as fast as Redis hands them over
// and decodes them on every core: the reader only stamps a beat with its
// arrival time and appends it to its agent's worker (by agent id, so each
// agent's beats are observed in the order they came), and each worker takes
// everything waiting in one go. A GC pause, a burst or a slow sweep is
// absorbed here, in at most MaxBytes, instead of in Redis's output buffer
// for the watcher, past whose limit Redis cuts the subscription off. Only
// when the workers fall behind by more than MaxBytes does add wait, and
// the backlog moves to Redis.
type Queue struct {
	shards []*shard
	ingest func([]byte, time.Time) error
	now    func() time.Time

	used atomic.Int64  // bytes waiting, over all workers
	room chan struct{} // a worker took some: add may go on
	done sync.WaitGroup
}

// MaxBytes bounds the beats waiting to be decoded: about 130,000 beats of
// 500 bytes, over a second of a million agents at 10s.
const MaxBytes = 64 << 20

// jobCost is what a waiting beat holds besides its payload.
const jobCost = 64

type shard struct {
	mu     sync.Mutex
	jobs   []job
	closed bool
	wake   chan struct{}
}

type job struct {
	payload []byte
	recv    time.Time // when the beat was read, not when it was decoded
}

// New starts a queue that ingests on workers goroutines (at least 1, at
// most 16), stamping each beat with now() as it is added.
func New(workers int, ingest func([]byte, time.Time) error, now func() time.Time) *Queue {
	workers = min(max(workers, 1), 16)
	q := &Queue{shards: make([]*shard, workers), ingest: ingest, now: now, room: make(chan struct{}, 1)}
	for i := range q.shards {
		s := &shard{wake: make(chan struct{}, 1)}
		q.shards[i] = s
		q.done.Add(1)
		go func() {
			defer q.done.Done()
			q.work(s)
		}()
	}
	return q
}

// work ingests what its shard is given until the queue is closed and the
// shard is empty.
func (q *Queue) work(s *shard) {
	var spare []job
	for {
		<-s.wake
		for {
			s.mu.Lock()
			batch, closed := s.jobs, s.closed
			if len(batch) == 0 {
				s.mu.Unlock()
				if closed {
					return
				}
				break
			}
			// The two buffers take turns: add fills one while this
			// worker empties the other.
			s.jobs = spare[:0]
			s.mu.Unlock()
			var n int64
			for _, j := range batch {
				_ = q.ingest(j.payload, j.recv)
				n += int64(len(j.payload)) + jobCost
			}
			clear(batch) // let the payloads go
			spare = batch
			q.used.Add(-n)
			select {
			case q.room <- struct{}{}:
			default:
			}
		}
	}
}

// Add hands one payload to its agent's worker. It is called from one
// goroutine only (the subscription), and waits only while more than
// MaxBytes are waiting.
func (q *Queue) Add(payload []byte) {
	j := job{payload: payload, recv: q.now()}
	s := q.shards[0]
	if len(q.shards) > 1 {
		s = q.shards[shardOf(payload, len(q.shards))]
	}
	s.mu.Lock()
	s.jobs = append(s.jobs, j)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if q.used.Add(int64(len(payload))+jobCost) > MaxBytes {
		for q.used.Load() > MaxBytes {
			// A worker signals room after every batch; the timer only
			// guards against a signal taken by an earlier wait.
			select {
			case <-q.room:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// Close stops the workers once they have ingested what was added.
func (q *Queue) Close() {
	for _, s := range q.shards {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	q.done.Wait()
}

var agentIDKey = []byte(`"agentId":"`)

// AgentIDOf finds the agent id in a beat without decoding it: the raw bytes
// of the first "agentId" value, or nil (an oversize beat, no such key, or a
// value whose end is not found).
func AgentIDOf(payload []byte) []byte {
	if len(payload) > wire.MaxBeatSize {
		return nil
	}
	i := bytes.Index(payload, agentIDKey)
	if i < 0 {
		return nil
	}
	id := payload[i+len(agentIDKey):]
	j := bytes.IndexByte(id, '"')
	if j < 0 {
		return nil
	}
	return id[:j]
}

// shardOf picks the worker for a beat by its agent id, found without
// decoding (AgentIDOf). A beat whose id is not written that way (spaces
// around the colon, escapes) goes to worker 0; each sender writes its beats
// alike, so its beats still share a worker.
func shardOf(payload []byte, n int) int {
	h := uint32(2166136261) // FNV-1a
	for _, c := range AgentIDOf(payload) {
		h = (h ^ uint32(c)) * 16777619
	}
	if h == 2166136261 {
		return 0
	}
	return int(h % uint32(n))
}
