package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/beatwrap/beatwrap/internal/store"
)

// HTTP keeps checkpoints in a single-node beatwatch, which fences them by
// epoch as Redis does.
type HTTP struct {
	watcher *store.HTTP
	ttl     time.Duration
}

// NewHTTP keeps checkpoints in the beatwatch w, for ttl after their last
// write (--checkpoint-ttl; 0 is the watcher's default).
func NewHTTP(w *store.HTTP, ttl time.Duration) *HTTP {
	return &HTTP{watcher: w, ttl: ttl}
}

// String names the watcher.
func (h *HTTP) String() string { return h.watcher.String() }

// agentPath is the path of what (epoch, checkpoint) for agent id.
func agentPath(id, what string) string {
	return "/v1/agents/" + url.PathEscape(id) + "/" + what
}

// do sends one request for path to the watcher and decodes a JSON answer
// into out. It returns the status code; a code that is not 2xx is an error
// unless it is one of ok. Errors name the URL with its password masked.
func (h *HTTP) do(ctx context.Context, method, path string, body []byte, out any, ok ...int) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	u := h.watcher.Shown(path)
	req, err := http.NewRequestWithContext(ctx, method, h.watcher.URL(path), rd)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, u, h.watcher.Redact(err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.watcher.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, u, h.watcher.Redact(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	good := resp.StatusCode/100 == 2
	for _, c := range ok {
		good = good || resp.StatusCode == c
	}
	if !good {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: answer: %w", method, u, err)
		}
	}
	return resp.StatusCode, nil
}

// BeginEpoch takes a new epoch from the watcher, then reads the checkpoint:
// a write from an older epoch that lands between the two is refused, so the
// checkpoint read is the last one any incarnation could store.
func (h *HTTP) BeginEpoch(ctx context.Context, id string) (int64, store.Checkpoint, error) {
	var e struct {
		Epoch int64 `json:"epoch"`
	}
	if _, err := h.do(ctx, http.MethodPost, agentPath(id, "epoch"), nil, &e); err != nil {
		return 0, store.Checkpoint{}, fmt.Errorf("take checkpoint epoch: %w", err)
	}
	var rec store.CheckpointRecord
	code, err := h.do(ctx, http.MethodGet, agentPath(id, "checkpoint"), nil, &rec, http.StatusNotFound)
	if code == http.StatusNotFound {
		rec = store.CheckpointRecord{}
	}
	if err != nil {
		return 0, store.Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
	}
	if code == http.StatusNotFound {
		return e.Epoch, store.Checkpoint{}, nil
	}
	return e.Epoch, rec.Checkpoint(), nil
}

// SaveCheckpoint PUTs cp to the watcher with epoch; 409 means superseded.
func (h *HTTP) SaveCheckpoint(ctx context.Context, id string, epoch int64, cp store.Checkpoint) error {
	value := []byte("null")
	at := time.Now()
	if !cp.None() {
		value, at = cp.Value, cp.At
	}
	q := url.Values{"epoch": {strconv.FormatInt(epoch, 10)}, "at": {strconv.FormatInt(at.UnixMilli(), 10)}}
	if h.ttl > 0 {
		q.Set("ttl", h.ttl.String())
	}
	var refused struct {
		Epoch int64 `json:"epoch"`
	}
	code, err := h.do(ctx, http.MethodPut, agentPath(id, "checkpoint")+"?"+q.Encode(), value, &refused, http.StatusConflict)
	if err != nil {
		return fmt.Errorf("store checkpoint: %w", err)
	}
	if code == http.StatusConflict {
		return &SupersededError{Epoch: epoch, Newer: refused.Epoch}
	}
	return nil
}
