package dashboard

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Fleet is what the API reads: the monitor's view of the agents.
type Fleet interface {
	Counter
	Agents() []monitor.Agent
	Get(id string) (monitor.Agent, bool)
}

// Intake takes a beat that arrived over HTTP (single-node mode). It returns
// an error wrapping wire.ErrMalformed for a beat that cannot be accepted.
type Intake interface {
	Ingest(payload []byte, recv time.Time) error
}

// Config is what the HTTP server serves.
type Config struct {
	Fleet   Fleet
	Intake  Intake // nil: POST /v1/beats answers 404 (beats come through Redis)
	Metrics *Metrics
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
}

// NewHandler returns the HTTP handler of the whole API.
func NewHandler(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /health/agents", s.auth(http.HandlerFunc(s.agents)))
	mux.Handle("GET /health/agents/{id}", s.auth(http.HandlerFunc(s.agent)))
	mux.Handle("POST /v1/beats", s.auth(http.HandlerFunc(s.beat)))
	mux.Handle("GET /metrics", s.auth(promhttp.HandlerFor(cfg.Metrics.registry, promhttp.HandlerOpts{})))
	mux.Handle("GET /{$}", s.auth(http.HandlerFunc(s.page)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

type server struct {
	cfg Config
}

func (s *server) auth(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte(s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if got == "" || got == r.Header.Get("Authorization") {
			got = r.URL.Query().Get("access_token")
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="beatwatch"`)
			writeError(w, http.StatusUnauthorized, "unauthorized: send Authorization: Bearer <token>")
			return
		}
		next.ServeHTTP(w, r)
	})
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

// summary builds the fleet summary. Counts come from the same list as the
// agents, so they always add up.
func (s *server) summary() Summary { return Summarize(s.cfg.Fleet.Agents()) }

// Summarize counts agents per state, as GET /health/agents shows them.
func Summarize(agents []monitor.Agent) Summary {
	sum := Summary{Total: len(agents), Agents: agents}
	for _, a := range agents {
		switch a.State {
		case monitor.Healthy:
			sum.Healthy++
		case monitor.Stalled:
			sum.Stalled++
		case monitor.Missing:
			sum.Missing++
		case monitor.Failed:
			sum.Failed++
		case monitor.Recovering:
			sum.Recovering++
		case monitor.Stopped:
			sum.Stopped++
		}
	}
	if sum.Agents == nil {
		sum.Agents = []monitor.Agent{}
	}
	return sum
}

func (s *server) agents(w http.ResponseWriter, r *http.Request) {
	sum := s.summary()
	if st := r.URL.Query().Get("state"); st != "" {
		kept := sum.Agents[:0:0]
		for _, a := range sum.Agents {
			if string(a.State) == st {
				kept = append(kept, a)
			}
		}
		sum.Agents = kept
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *server) agent(w http.ResponseWriter, r *http.Request) {
	a, ok := s.cfg.Fleet.Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "agent not found")
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *server) beat(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Intake == nil {
		writeError(w, http.StatusNotFound, "beats go to Redis: this beatwatch runs with --redis")
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
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]bool{"ok": true})
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
