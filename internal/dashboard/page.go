package dashboard

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/beatwrap/beatwrap/internal/dashboard/history"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// assets are the dashboard's page: plain HTML, CSS and JavaScript, no build
// step. They hold no data: the scripts read it from the API with the token
// the user gives, so the files themselves are served without one (a browser
// cannot send a header when it opens a URL).
//
//go:embed assets
var assets embed.FS

var assetFS, _ = fs.Sub(assets, "assets")

// serveAsset writes one embedded file.
func serveAsset(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		http.ServeFileFS(w, r, assetFS, name)
	}
}

// agentPage serves the agent page for a valid id, 404 otherwise.
func (s *server) agentPage(w http.ResponseWriter, r *http.Request) {
	if wire.ValidateID(r.PathValue("id")) != nil {
		writeError(w, http.StatusNotFound, "agent not found")
		return
	}
	serveAsset("agent.html")(w, r)
}

// agentHistory serves GET /v1/agents/{id}/history: the agent's timeline and
// samples.
func (s *server) agentHistory(w http.ResponseWriter, r *http.Request) {
	a, ok := s.cfg.Fleet.Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "agent not found")
		return
	}
	h := s.cfg.History
	if h == nil {
		h = history.New()
	}
	writeJSON(w, http.StatusOK, h.Of(a, s.cfg.Now()))
}
