package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// BeatsPath is where a single-node beatwatch takes beats.
const BeatsPath = "/v1/beats"

// HTTP posts beats to a single-node beatwatch.
type HTTP struct {
	endpoint string
	base     string // the watcher's URL, for the checkpoint endpoints
	ckptTTL  time.Duration
	token    string
	client   *http.Client
}

// NewHTTP returns a Publisher that POSTs to the beatwatch at base
// (http://host:port). token, when set, is sent as a bearer token.
func NewHTTP(base, token string, timeout time.Duration) (*HTTP, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// "127.0.0.1:7070" parses as a scheme, or not at all: the usual slip.
		if !strings.Contains(base, "://") {
			return nil, fmt.Errorf("watcher url needs its scheme: http://%s, got %q", base, base)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("parse watcher url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("watcher url must be http://host:port or https://host:port, got %q", base)
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	watcher := u.String()
	u.Path += BeatsPath
	return &HTTP{
		endpoint: u.String(),
		base:     watcher,
		token:    token,
		client: &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{MaxIdleConns: 2, IdleConnTimeout: time.Minute, Proxy: nil},
		},
	}, nil
}

// String names the watcher endpoint.
func (h *HTTP) String() string { return h.endpoint }

// Close drops idle connections.
func (h *HTTP) Close() error {
	h.client.CloseIdleConnections()
	return nil
}

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
		return fmt.Errorf("post beat to %s: %w", h.endpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("post beat to %s: %w", h.endpoint, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4:
		return fmt.Errorf("%w by %s: %s: %s", ErrRejected, h.endpoint, resp.Status, bytes.TrimSpace(msg))
	default:
		return fmt.Errorf("post beat to %s: %s: %s", h.endpoint, resp.Status, bytes.TrimSpace(msg))
	}
}
