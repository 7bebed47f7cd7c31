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
	shown  string // base as logs show it: a password in it masked
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
			return nil, fmt.Errorf("watcher url needs its scheme: http://%s, got %q", redact(base), redact(base))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("parse watcher url: %w", redactErr(err, base))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("watcher url must be http://host:port or https://host:port, got %q", redact(base))
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &HTTP{
		base:  u.String(),
		shown: u.Redacted(),
		token: token,
		client: &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{MaxIdleConns: 2, IdleConnTimeout: time.Minute, Proxy: nil},
		},
	}, nil
}

// URL is the address of path (which starts with a slash) on the watcher.
// It may hold a password: name it in logs and errors with Shown.
func (h *HTTP) URL(path string) string { return h.base + path }

// Shown is the address of path on the watcher as logs and errors show it,
// a password in the URL masked.
func (h *HTTP) Shown(path string) string { return h.shown + path }

// String names the watcher for logs, a password in its URL masked.
func (h *HTTP) String() string { return h.shown }

// Redact masks the watcher's password wherever err's text shows it.
func (h *HTTP) Redact(err error) error { return redactErr(err, h.base) }

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
