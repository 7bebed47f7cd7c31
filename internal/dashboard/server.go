package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/beatwrap/beatwrap/internal/dashboard/history"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Fleet is what the API reads: the monitor's view of the agents, a page at
// a time.
type Fleet interface {
	Counter
	Page(q monitor.Query) monitor.Page
	Get(id string) (monitor.Agent, bool)
}

// Intake takes a beat that arrived over HTTP (single-node mode). It returns
// an error wrapping wire.ErrMalformed for a beat that cannot be accepted,
// and one wrapping monitor.ErrFull for a beat of a new agent id refused at
// the watcher's cap.
type Intake interface {
	Ingest(payload []byte, recv time.Time) error
}

// Config is what the HTTP server serves.
type Config struct {
	Fleet Fleet
	// Local is this replica's own share of the fleet, which other replicas
	// ask for with scope=local; nil: Fleet is all of it.
	Local Fleet
	// Replicas, when set, is the body of GET /v1/replicas: the live
	// beatwatch replicas and the shards each reads.
	Replicas func() any
	Intake   Intake // nil: POST /v1/beats answers 404 (beats come through Redis)
	// Checkpoints keeps or reads agents' checkpoints (/v1/agents/{id}/...);
	// nil: those endpoints answer 404.
	Checkpoints Checkpoints
	Metrics     *Metrics
	// Events streams the monitor's transitions (GET /v1/events); nil: 404.
	Events *Events
	// History keeps agents' timelines and samples for their pages; nil:
	// only the recovery steps the monitor keeps.
	History *history.History
	Token   string // non-empty: bearer token required on all but /healthz
	// Healthy reports the watcher's own health for /healthz; nil means always.
	Healthy func() error
	Log     *slog.Logger
	Now     func() time.Time
}

// Summary is the body of GET /health/agents.
type Summary struct {
	Total      int             `json:"total"`
	Healthy    int             `json:"healthy"`
	Stalled    int             `json:"stalled"`
	Missing    int             `json:"missing"`
	Failed     int             `json:"failed"`
	Recovering int             `json:"recovering"`
	Stopped    int             `json:"stopped"`
	Agents     []monitor.Agent `json:"agents"`
	// Next is the cursor of the following page; absent on the last one.
	Next string `json:"next,omitempty"`
}

// Paging limits of GET /health/agents.
const (
	DefaultLimit = 1000
	// MaxLimit bounds one page, so that no request makes the watcher hold
	// or write more than a few megabytes.
	MaxLimit = 10000
	// LargePage is the limit above which a page is large: at most
	// MaxLargePages of them are built or written at once, so that many
	// clients at once cannot make the watcher hold many pages of MaxLimit.
	// Smaller pages (the dashboard's 50, counts only) always pass.
	LargePage     = 100
	MaxLargePages = 4
)

// largeWait is how long a large page waits for its turn before it is
// answered 503 with Retry-After.
const largeWait = time.Second

// NewHandler returns the HTTP handler of the whole API.
func NewHandler(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Local == nil {
		cfg.Local = cfg.Fleet
	}
	s := &server{cfg: cfg, large: make(chan struct{}, MaxLargePages)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /health/agents", s.auth(http.HandlerFunc(s.agents)))
	mux.Handle("GET /health/agents/{id}", s.auth(http.HandlerFunc(s.agent)))
	mux.Handle("POST /v1/beats", s.auth(http.HandlerFunc(s.beat)))
	s.checkpointRoutes(mux)
	if cfg.Replicas != nil {
		mux.Handle("GET /v1/replicas", s.auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, cfg.Replicas())
		})))
	}
	mux.Handle("GET /metrics", s.auth(promhttp.HandlerFor(cfg.Metrics.registry, promhttp.HandlerOpts{})))
	if cfg.Events != nil {
		mux.Handle("GET /v1/events", s.auth(cfg.Events))
	}
	mux.Handle("GET /v1/agents/{id}/history", s.auth(http.HandlerFunc(s.agentHistory)))
	mux.HandleFunc("GET /{$}", serveAsset("index.html"))
	mux.HandleFunc("GET /agents/{id}", s.agentPage)
	for _, f := range []string{"app.css", "fleet.js", "agent.js", "common.js"} {
		mux.HandleFunc("GET /assets/"+f, serveAsset(f))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return sameOrigin(cfg.Log, mux)
}

type server struct {
	cfg   Config
	large chan struct{} // a token per large page being built or written
}

func (s *server) auth(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	// Both sides are hashed first, so the comparison takes the same time
	// whatever the length of what was sent (ConstantTimeCompare returns at
	// once on a length mismatch, which would tell the token's length).
	want := sha256.Sum256([]byte(s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="beatwatch"`)
			writeError(w, http.StatusUnauthorized, "unauthorized: send Authorization: Bearer <token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the token of an Authorization header of the Bearer scheme,
// whose name is case-insensitive (RFC 9110, 11.1). The token is never taken
// from the URL: a URL ends up in logs, browser history and Referer headers.
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// sameOrigin refuses requests that a web page on another origin makes the
// browser send: beatwatch listens on the user's own machine, where any page
// the user opens can POST to 127.0.0.1. Browsers say where a request comes
// from (Sec-Fetch-Site, else Origin); a request without either, as curl,
// beatwrap and other local processes send, is not a browser's and passes.
// Reads (GET, HEAD) pass too: a page on another origin cannot read the
// answers, since beatwatch sends no CORS headers.
func sameOrigin(log *slog.Logger, next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Warn("cross-origin browser request refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		writeError(w, http.StatusForbidden, "cross-origin request refused: beatwatch takes no writes from web pages of another origin")
	}))
	return cop.Handler(next)
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Healthy != nil {
		if err := s.cfg.Healthy(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "degraded", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Summarize counts agents per state, as GET /health/agents shows them, and
// lists them all (beatwatch status --redis, which has no watcher to page).
func Summarize(agents []monitor.Agent) Summary {
	sum := Summary{Total: len(agents), Agents: agents}
	for _, a := range agents {
		sum.add(a.State, 1)
	}
	if sum.Agents == nil {
		sum.Agents = []monitor.Agent{}
	}
	return sum
}

func (sum *Summary) add(s monitor.State, n int) {
	switch s {
	case monitor.Healthy:
		sum.Healthy += n
	case monitor.Stalled:
		sum.Stalled += n
	case monitor.Missing:
		sum.Missing += n
	case monitor.Failed:
		sum.Failed += n
	case monitor.Recovering:
		sum.Recovering += n
	case monitor.Stopped:
		sum.Stopped += n
	}
}

// PageSummary is the body of GET /health/agents for one page.
func PageSummary(p monitor.Page) Summary {
	sum := Summary{Total: p.Total, Agents: p.Agents}
	for st, n := range p.Counts {
		sum.add(st, n)
	}
	if sum.Agents == nil {
		sum.Agents = []monitor.Agent{}
	}
	if p.Next != nil {
		sum.Next = EncodeCursor(*p.Next)
	}
	return sum
}

// EncodeCursor turns a page position into the opaque cursor of the API.
func EncodeCursor(p monitor.Position) string {
	return base64.RawURLEncoding.EncodeToString([]byte(string(p.State) + ":" + p.ID))
}

// DecodeCursor reads a cursor made by EncodeCursor.
func DecodeCursor(c string) (monitor.Position, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return monitor.Position{}, fmt.Errorf("cursor must be the next of a previous page, got %q", c)
	}
	st, id, ok := strings.Cut(string(raw), ":")
	if !ok || monitor.Rank(monitor.State(st)) >= len(monitor.States()) || wire.ValidateID(id) != nil {
		return monitor.Position{}, fmt.Errorf("cursor must be the next of a previous page, got %q", c)
	}
	return monitor.Position{State: monitor.State(st), ID: id}, nil
}

// ParseQuery reads the query of GET /health/agents: state, type, host, q,
// limit and cursor. Its error names the parameter and the value.
func ParseQuery(v url.Values) (monitor.Query, error) {
	q := monitor.Query{Type: v.Get("type"), Host: v.Get("host"), Q: v.Get("q"), Limit: DefaultLimit}
	if st := v.Get("state"); st != "" {
		if monitor.Rank(monitor.State(st)) >= len(monitor.States()) {
			return q, fmt.Errorf("state must be one of healthy, stalled, missing, failed, recovering, stopped, got %q", st)
		}
		q.State = monitor.State(st)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 || n > MaxLimit {
			return q, fmt.Errorf("limit must be a number from 0 to %d, got %q", MaxLimit, l)
		}
		q.Limit = n
	}
	if c := v.Get("cursor"); c != "" {
		pos, err := DecodeCursor(c)
		if err != nil {
			return q, err
		}
		q.After = pos
	}
	return q, nil
}

// agents serves one page of the fleet. The page is built under the
// monitor's lock, at most MaxLimit agents, and written after it is
// released: a slow reader holds its own page and nothing else. At most
// MaxLargePages pages above LargePage are held at once; another waits up to
// a second for its turn, then is answered 503 with Retry-After.
func (s *server) agents(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.Limit > LargePage {
		t := time.NewTimer(largeWait)
		select {
		case s.large <- struct{}{}:
			t.Stop()
			defer func() { <-s.large }()
		case <-t.C:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf(
				"busy: %d pages of more than %d agents are being served; retry, or ask for a smaller limit", MaxLargePages, LargePage))
			return
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	writeJSON(w, http.StatusOK, PageSummary(s.fleet(r).Page(q)))
}

// fleet is what a request asks about: the whole fleet, or with scope=local
// (another replica asking) this replica's own share.
func (s *server) fleet(r *http.Request) Fleet {
	if r.URL.Query().Get("scope") == ScopeLocal {
		return s.cfg.Local
	}
	return s.cfg.Fleet
}

// ScopeLocal is the query (scope=local) by which one beatwatch replica asks
// another for the agents it judges itself, not the whole fleet.
const ScopeLocal = "local"

func (s *server) agent(w http.ResponseWriter, r *http.Request) {
	a, ok := s.fleet(r).Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "agent not found")
		return
	}
	writeJSON(w, http.StatusOK, s.withCheckpoint(a))
}

func (s *server) beat(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Intake == nil {
		writeError(w, http.StatusNotFound, "beats go to Redis: this beatwatch runs with --redis")
		return
	}
	// A web page can send text/plain to another origin without asking
	// first (a "simple" request); application/json it cannot.
	if !isJSON(r.Header.Get("Content-Type")) {
		s.cfg.Metrics.BeatReceived()
		s.cfg.Metrics.BeatMalformed("content-type")
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type")))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, wire.MaxBeatSize))
	if err != nil {
		s.cfg.Metrics.BeatReceived()
		s.cfg.Metrics.BeatMalformed("size")
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("beat is larger than %d bytes", wire.MaxBeatSize))
		return
	}
	if err := s.cfg.Intake.Ingest(body, s.cfg.Now()); err != nil {
		if errors.Is(err, wire.ErrMalformed) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		// Too many agents, not a bad beat: the agent's beatwrap says so
		// once and keeps sending, and its next beat is taken once there is
		// room.
		if errors.Is(err, monitor.ErrFull) {
			writeError(w, http.StatusTooManyRequests, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]bool{"ok": true})
}

// isJSON says whether a Content-Type is application/json, parameters (such as
// charset=utf-8) aside.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
