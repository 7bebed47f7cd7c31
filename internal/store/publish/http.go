package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// BeatsPath is where a single-node beatwatch takes beats.
const BeatsPath = "/v1/beats"

// HTTP posts beats to a single-node beatwatch.
type HTTP struct {
	watcher  *store.HTTP
	endpoint string // where beats go; it may hold a password
	shown    string // endpoint as logs and errors show it
}

// NewHTTP returns a Publisher that POSTs to the beatwatch w. Close drops
// w's idle connections.
func NewHTTP(w *store.HTTP) *HTTP {
	return &HTTP{watcher: w, endpoint: w.URL(BeatsPath), shown: w.Shown(BeatsPath)}
}

// String names the watcher endpoint, a password in its URL masked.
func (h *HTTP) String() string { return h.shown }

// Close drops idle connections.
func (h *HTTP) Close() error { return h.watcher.Close() }

// Register sends the starting beat.
func (h *HTTP) Register(ctx context.Context, b wire.Beat) error { return h.post(ctx, b) }

// Beat sends one beat.
func (h *HTTP) Beat(ctx context.Context, b wire.Beat) error { return h.post(ctx, b) }

// Final sends the final beat; the watcher records the stop from its status.
func (h *HTTP) Final(ctx context.Context, b wire.Beat, _ time.Time) error { return h.post(ctx, b) }

func (h *HTTP) post(ctx context.Context, b wire.Beat) error {
	body, err := wire.MarshalBeat(b)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post beat to %s: %w", h.shown, h.watcher.Redact(err))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.watcher.Do(req)
	if err != nil {
		return fmt.Errorf("post beat to %s: %w", h.shown, h.watcher.Redact(err))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4:
		// A 4xx is the watcher's word on this beat (a wrong token, a beat
		// past its --max-agents): the Sender logs it once per run of them.
		return fmt.Errorf("%w by %s: %s: %s", ErrRejected, h.shown, resp.Status, reason(msg))
	default:
		return fmt.Errorf("post beat to %s: %s: %s", h.shown, resp.Status, reason(msg))
	}
}

// reason is the text of a watcher's answer: the error of its JSON
// ({"error":"..."}), else the body as it came.
func reason(body []byte) []byte {
	var answer struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &answer) == nil && answer.Error != "" {
		return []byte(answer.Error)
	}
	return bytes.TrimSpace(body)
}
