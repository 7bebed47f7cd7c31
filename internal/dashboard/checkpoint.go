package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// A single-node beatwatch keeps its agents' checkpoints, fenced by epoch, for
// the beatwraps that send it their beats (--watcher):
//
//	POST /v1/agents/{id}/epoch       a starting beatwrap takes the next epoch: {"epoch":N}
//	PUT  /v1/agents/{id}/checkpoint  the body (any JSON, null clears) is the checkpoint;
//	                                 ?epoch=N refuses it (409) when a newer epoch was taken,
//	                                 ?at=MS when it was made, ?ttl=DURATION how long to keep it
//	GET  /v1/agents/{id}/checkpoint  {"agentId","epoch","at","bytes","checkpoint"}, or 404
//
// With --redis the checkpoints live in Redis; GET reads them there and the
// writes answer 404, as POST /v1/beats does.

// Checkpoints keeps agents' checkpoints for the HTTP API.
type Checkpoints interface {
	// Epoch takes the next epoch for id.
	Epoch(id string, now time.Time) (int64, error)
	// Put stores value (JSON; null clears) for id unless a newer epoch than
	// epoch was taken (0: unfenced); newer is that epoch when refused.
	Put(id string, epoch int64, value []byte, at time.Time, ttl time.Duration) (newer int64, err error)
	// Get returns the checkpoint of id; ok is false when there is none.
	Get(id string, now time.Time) (c StoredCheckpoint, ok bool, err error)
}

// StoredCheckpoint is the body of GET /v1/agents/{id}/checkpoint.
type StoredCheckpoint struct {
	AgentID    string          `json:"agentId"`
	Epoch      int64           `json:"epoch"`
	At         int64           `json:"at"` // ms since the epoch
	Bytes      int             `json:"bytes"`
	Checkpoint json.RawMessage `json:"checkpoint"`
}

// CheckpointSummary is what the agent JSON shows of an agent's checkpoint.
type CheckpointSummary struct {
	At         int64 `json:"at"` // ms since the epoch
	AgeSeconds int64 `json:"ageSeconds"`
	Bytes      int   `json:"bytes"`
}

// ErrCheckpointsFull is Put's error when the store holds all it may.
var ErrCheckpointsFull = errors.New("checkpoint store is full")

// Limits of the single-node checkpoint store: a checkpoint fits a socket
// line, and the store as a whole stays a small part of the watcher's memory.
const (
	MaxCheckpoints     = 10000
	MaxCheckpointBytes = 64 << 20
	defaultCkptTTL     = 7 * 24 * time.Hour
)

// MemoryCheckpoints is the single-node watcher's checkpoint store, in memory:
// it lives as long as the watcher.
type MemoryCheckpoints struct {
	mu    sync.Mutex
	byID  map[string]*memCheckpoint
	bytes int
}

type memCheckpoint struct {
	epoch   int64
	at      time.Time
	value   []byte // nil: none
	expires time.Time
}

// NewMemoryCheckpoints returns an empty store.
func NewMemoryCheckpoints() *MemoryCheckpoints {
	return &MemoryCheckpoints{byID: map[string]*memCheckpoint{}}
}

// entry returns id's entry, dropping it first when it has expired. m.mu is held.
func (m *MemoryCheckpoints) entry(id string, now time.Time) *memCheckpoint {
	e := m.byID[id]
	if e != nil && !e.expires.IsZero() && now.After(e.expires) {
		m.bytes -= len(e.value)
		delete(m.byID, id)
		e = nil
	}
	return e
}

// room makes sure one more entry fits, dropping expired ones when it would
// not. m.mu is held.
func (m *MemoryCheckpoints) room(now time.Time) bool {
	if len(m.byID) < MaxCheckpoints {
		return true
	}
	for id := range m.byID {
		m.entry(id, now)
	}
	return len(m.byID) < MaxCheckpoints
}

// Epoch takes the next epoch for id.
func (m *MemoryCheckpoints) Epoch(id string, now time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(id, now)
	if e == nil {
		if !m.room(now) {
			return 0, ErrCheckpointsFull
		}
		e = &memCheckpoint{expires: now.Add(defaultCkptTTL)}
		m.byID[id] = e
	}
	e.epoch++
	return e.epoch, nil
}

// Put stores value for id unless a newer epoch was taken.
func (m *MemoryCheckpoints) Put(id string, epoch int64, value []byte, at time.Time, ttl time.Duration) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(id, at)
	if e != nil && e.epoch > epoch && epoch != 0 {
		return e.epoch, nil
	}
	if string(value) == "null" {
		value = nil
	}
	if e == nil {
		if value == nil {
			return 0, nil
		}
		if !m.room(at) {
			return 0, ErrCheckpointsFull
		}
		e = &memCheckpoint{}
		m.byID[id] = e
	}
	if m.bytes-len(e.value)+len(value) > MaxCheckpointBytes {
		return 0, ErrCheckpointsFull
	}
	m.bytes += len(value) - len(e.value)
	e.value = append([]byte(nil), value...)
	e.at = at
	e.epoch = max(e.epoch, epoch)
	if ttl <= 0 {
		ttl = defaultCkptTTL
	}
	e.expires = at.Add(ttl)
	return 0, nil
}

// Get returns id's checkpoint.
func (m *MemoryCheckpoints) Get(id string, now time.Time) (StoredCheckpoint, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(id, now)
	if e == nil || e.value == nil {
		return StoredCheckpoint{}, false, nil
	}
	return StoredCheckpoint{AgentID: id, Epoch: e.epoch, At: e.at.UnixMilli(), Bytes: len(e.value),
		Checkpoint: append(json.RawMessage(nil), e.value...)}, true, nil
}

// checkpointRoutes adds the checkpoint endpoints to mux.
func (s *server) checkpointRoutes(mux *http.ServeMux) {
	mux.Handle("POST /v1/agents/{id}/epoch", s.auth(http.HandlerFunc(s.takeEpoch)))
	mux.Handle("PUT /v1/agents/{id}/checkpoint", s.auth(http.HandlerFunc(s.putCheckpoint)))
	mux.Handle("GET /v1/agents/{id}/checkpoint", s.auth(http.HandlerFunc(s.getCheckpoint)))
}

// checkpointAgent returns the agent id of the path, or answers 400 or 404.
func (s *server) checkpointAgent(w http.ResponseWriter, r *http.Request, write bool) (string, bool) {
	if s.cfg.Checkpoints == nil || write && s.cfg.Intake == nil {
		writeError(w, http.StatusNotFound, "checkpoints are kept in Redis: this beatwatch runs with --redis")
		return "", false
	}
	id := r.PathValue("id")
	if err := wire.ValidateID(id); err != nil {
		writeError(w, http.StatusBadRequest, "agent id: "+err.Error())
		return "", false
	}
	return id, true
}

func (s *server) takeEpoch(w http.ResponseWriter, r *http.Request) {
	id, ok := s.checkpointAgent(w, r, true)
	if !ok {
		return
	}
	epoch, err := s.cfg.Checkpoints.Epoch(id, s.cfg.Now())
	if err != nil {
		writeError(w, http.StatusInsufficientStorage, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"epoch": epoch})
}

func (s *server) putCheckpoint(w http.ResponseWriter, r *http.Request) {
	id, ok := s.checkpointAgent(w, r, true)
	if !ok {
		return
	}
	q := r.URL.Query()
	var epoch int64
	if v := q.Get("epoch"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("epoch must be a whole number, got %q", v))
			return
		}
		epoch = n
	}
	at := s.cfg.Now()
	if v := q.Get("at"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("at must be ms since the epoch, got %q", v))
			return
		}
		at = time.UnixMilli(ms)
	}
	var ttl time.Duration
	if v := q.Get("ttl"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl must be a duration such as 168h, got %q", v))
			return
		}
		ttl = d
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, sockline.MaxLineSize))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("checkpoint is larger than %d bytes", sockline.MaxLineSize))
		return
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil || len(bytes.TrimSpace(body)) == 0 {
		writeError(w, http.StatusBadRequest, "checkpoint is not JSON: the body must be one JSON value (null clears it)")
		return
	}
	body = compact.Bytes()
	newer, err := s.cfg.Checkpoints.Put(id, epoch, body, at, ttl)
	switch {
	case errors.Is(err, ErrCheckpointsFull):
		writeError(w, http.StatusInsufficientStorage, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	case newer != 0:
		writeJSON(w, http.StatusConflict, map[string]any{
			"error": fmt.Sprintf("superseded: epoch %d was taken after %d", newer, epoch), "epoch": newer})
	default:
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}
}

func (s *server) getCheckpoint(w http.ResponseWriter, r *http.Request) {
	id, ok := s.checkpointAgent(w, r, false)
	if !ok {
		return
	}
	c, found, err := s.cfg.Checkpoints.Get(id, s.cfg.Now())
	switch {
	case err != nil:
		writeError(w, http.StatusBadGateway, err.Error())
	case !found:
		writeError(w, http.StatusNotFound, "no checkpoint")
	default:
		writeJSON(w, http.StatusOK, c)
	}
}

// agentView is an agent as GET /health/agents/{id} shows it: the monitor's
// view and its checkpoint, when there is one.
type agentView struct {
	monitor.Agent
	Checkpoint *CheckpointSummary `json:"checkpoint,omitempty"`
}

// withCheckpoint adds a's checkpoint summary, when the watcher knows one.
func (s *server) withCheckpoint(a monitor.Agent) agentView {
	v := agentView{Agent: a}
	if s.cfg.Checkpoints == nil {
		return v
	}
	now := s.cfg.Now()
	c, ok, err := s.cfg.Checkpoints.Get(a.AgentID, now)
	if err != nil || !ok {
		return v
	}
	v.Checkpoint = &CheckpointSummary{At: c.At, Bytes: c.Bytes, AgeSeconds: max(0, now.Sub(time.UnixMilli(c.At)).Milliseconds()/1000)}
	return v
}
