package store

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HTTP is a single-node beatwatch as beatwrap reaches it (--watcher): its
// URL, the bearer token, and one small connection pool shared by the beats
// and the checkpoints sent to it.
type HTTP struct {
	base   string // the watcher's URL, without a trailing slash
	token  string
	client *http.Client
}

// NewHTTP returns the beatwatch at base (http://host:port or https://…).
// token, when set, is sent as a bearer token; timeout bounds each request
// (0: 2s).
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
	return &HTTP{
		base:  u.String(),
		token: token,
		client: &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{MaxIdleConns: 2, IdleConnTimeout: time.Minute, Proxy: nil},
		},
	}, nil
}

// URL is the address of path (which starts with a slash) on the watcher.
func (h *HTTP) URL(path string) string { return h.base + path }

// Do sends req with the bearer token.
func (h *HTTP) Do(req *http.Request) (*http.Response, error) {
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	return h.client.Do(req)
}

// Close drops idle connections.
func (h *HTTP) Close() error {
	h.client.CloseIdleConnections()
	return nil
}
