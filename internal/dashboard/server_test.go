package dashboard

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// fleet is a fixed set of agents.
type fleet []monitor.Agent

// Page pages the fixed set the plain way: filter, sort, cut.
func (f fleet) Page(q monitor.Query) monitor.Page {
	p := monitor.Page{Counts: f.Counts(), Total: len(f), Agents: []monitor.Agent{}}
	s := slices.Clone(f)
	slices.SortFunc(s, func(a, b monitor.Agent) int {
		return cmp.Or(cmp.Compare(monitor.Rank(a.State), monitor.Rank(b.State)), strings.Compare(a.AgentID, b.AgentID))
	})
	for _, a := range s {
		if q.State != "" && a.State != q.State {
			continue
		}
		if q.After != (monitor.Position{}) && cmp.Or(cmp.Compare(monitor.Rank(a.State), monitor.Rank(q.After.State)), strings.Compare(a.AgentID, q.After.ID)) <= 0 {
			continue
		}
		if len(p.Agents) == q.Limit {
			last := p.Agents[len(p.Agents)-1]
			p.Next = &monitor.Position{State: last.State, ID: last.AgentID}
			break
		}
		p.Agents = append(p.Agents, a)
	}
	return p
}

func (f fleet) Get(id string) (monitor.Agent, bool) {
	for _, a := range f {
		if a.AgentID == id {
			return a, true
		}
	}
	return monitor.Agent{}, false
}

func (f fleet) Counts() map[monitor.State]int {
	out := map[monitor.State]int{}
	for _, a := range f {
		out[a.State]++
	}
	return out
}

// intake records beats the way the watcher's Ingest judges them.
type intake struct{ got []string }

func (in *intake) Ingest(p []byte, _ time.Time) error {
	if _, err := wire.ParseBeat(p); err != nil {
		return err
	}
	in.got = append(in.got, string(p))
	return nil
}

func testFleet() fleet {
	return fleet{
		{AgentID: "a-1", State: monitor.Healthy},
		{AgentID: "a-2", State: monitor.Failed},
		{AgentID: "a-3", State: monitor.Failed},
		{AgentID: "a-4", State: monitor.Stopped},
	}
}

func serve(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.Fleet == nil {
		cfg.Fleet = testFleet()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(cfg.Fleet)
	}
	srv := httptest.NewServer(NewHandler(cfg))
	t.Cleanup(srv.Close)
	return srv
}

// do sends a request as a local process would: no Origin, and a POST body
// as application/json.
func do(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	h := map[string]string{}
	if auth != "" {
		h["Authorization"] = auth
	}
	if method == http.MethodPost {
		h["Content-Type"] = "application/json"
	}
	return send(t, method, url, h, body)
}

// send sends a request with exactly the headers given.
func send(t *testing.T, method, url string, headers map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTokenGuardsAllButHealthz(t *testing.T) {
	srv := serve(t, Config{Token: "tok", Intake: &intake{}, Events: NewEvents(0)})
	tests := []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/health/agents", "", 401},
		{"GET", "/health/agents", "Bearer nope", 401},
		{"GET", "/health/agents", "Basic tok", 401},
		{"GET", "/health/agents", "Bearer tok", 200},
		{"GET", "/health/agents", "bearer tok", 200},
		{"GET", "/health/agents", "BEARER  tok ", 200},
		{"GET", "/health/agents", "Bearer tok2", 401},
		{"GET", "/health/agents", "Bearer to", 401},
		{"GET", "/health/agents", "Bearertok", 401},
		{"GET", "/health/agents", "Bearer ", 401},
		{"GET", "/health/agents?access_token=tok", "", 401},
		{"POST", "/v1/beats?access_token=tok", "", 401},
		{"GET", "/health/agents/a-1", "", 401},
		{"GET", "/health/agents/a-1", "Bearer tok", 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", "Bearer tok", 200},
		{"POST", "/v1/beats", "", 401},
		{"GET", "/v1/events", "", 401},
		{"GET", "/v1/agents/a-1/history", "", 401},
		{"GET", "/v1/agents/a-1/history", "Bearer tok", 200},
		// The page's files hold no data: a browser opens them without a
		// header, and their scripts send the token.
		{"GET", "/", "", 200},
		{"GET", "/agents/a-1", "", 200},
		{"GET", "/assets/fleet.js", "", 200},
		{"GET", "/healthz", "", 200},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s %q", tt.method, tt.path, tt.auth), func(t *testing.T) {
			got, body := do(t, tt.method, srv.URL+tt.path, tt.auth, `{"agentId":"x"}`)
			if got != tt.want {
				t.Errorf("status = %d %s, want %d", got, body, tt.want)
			}
		})
	}
}

func TestAgentsAndOneAgent(t *testing.T) {
	srv := serve(t, Config{})
	code, body := do(t, "GET", srv.URL+"/health/agents", "", "")
	var sum Summary
	if code != 200 || json.Unmarshal([]byte(body), &sum) != nil {
		t.Fatalf("GET /health/agents = %d %s", code, body)
	}
	if sum.Total != 4 || sum.Healthy != 1 || sum.Failed != 2 || sum.Stopped != 1 || len(sum.Agents) != 4 {
		t.Errorf("summary = %+v", sum)
	}
	code, body = do(t, "GET", srv.URL+"/health/agents?state=failed", "", "")
	if err := json.Unmarshal([]byte(body), &sum); code != 200 || err != nil || len(sum.Agents) != 2 || sum.Total != 4 {
		t.Errorf("?state=failed = %d %s, want the two failed agents and the whole fleet's counts", code, body)
	}
	tests := []struct {
		id       string
		want     int
		wantBody string
	}{
		{"a-2", 200, `"agentId":"a-2"`},
		{"nobody", 404, `{"error":"agent not found"}`},
	}
	for _, tt := range tests {
		code, body := do(t, "GET", srv.URL+"/health/agents/"+tt.id, "", "")
		if code != tt.want || !strings.Contains(body, tt.wantBody) {
			t.Errorf("GET /health/agents/%s = %d %s, want %d with %s", tt.id, code, body, tt.want, tt.wantBody)
		}
	}
	if code, body := do(t, "GET", srv.URL+"/nothing/here", "", ""); code != 404 || !strings.Contains(body, `"error"`) {
		t.Errorf("unknown path = %d %s, want a JSON 404", code, body)
	}
}

func TestHealthz(t *testing.T) {
	var err error
	srv := serve(t, Config{Healthy: func() error { return err }})
	if code, body := do(t, "GET", srv.URL+"/healthz", "", ""); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("healthy: %d %s", code, body)
	}
	err = errors.New("not watching beats")
	if code, body := do(t, "GET", srv.URL+"/healthz", "", ""); code != 503 || !strings.Contains(body, `"degraded"`) ||
		!strings.Contains(body, "not watching beats") {
		t.Errorf("blind: %d %s, want 503 degraded with the reason", code, body)
	}
}

func TestBeatIntake(t *testing.T) {
	in := &intake{}
	srv := serve(t, Config{Intake: in})
	tests := []struct {
		name, body string
		want       int
	}{
		{"ok", `{"agentId":"a-9","status":"healthy"}`, 202},
		{"bad id", `{"agentId":"a 9"}`, 400},
		{"not json", `hello`, 400},
		{"too large", `{"agentId":"a-9","currentTask":"` + strings.Repeat("x", wire.MaxBeatSize) + `"}`, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := do(t, "POST", srv.URL+"/v1/beats", "", tt.body); code != tt.want {
				t.Errorf("POST = %d %s, want %d", code, body, tt.want)
			}
		})
	}
	if len(in.got) != 1 {
		t.Errorf("intake got %d beats, want 1", len(in.got))
	}
	_, metrics := do(t, "GET", srv.URL+"/metrics", "", "")
	if !strings.Contains(metrics, `beatwatch_beats_malformed_total{reason="size"} 1`) {
		t.Errorf("oversize beat not counted as malformed:\n%s", metrics)
	}

	srv = serve(t, Config{}) // beats come through Redis
	if code, body := do(t, "POST", srv.URL+"/v1/beats", "", `{"agentId":"a-9"}`); code != 404 {
		t.Errorf("POST without intake = %d %s, want 404", code, body)
	}
}

// TestBrowsersCannotPostBeats: a web page the user opens can make the
// browser POST to a watcher on the user's machine. The browser says so
// (Origin, Sec-Fetch-Site), and a text/plain body, which a page may send
// without asking, is no beat; a local process's plain JSON POST still works,
// with no token.
func TestBrowsersCannotPostBeats(t *testing.T) {
	in := &intake{}
	srv := serve(t, Config{Intake: in})
	host := strings.TrimPrefix(srv.URL, "http://")
	beat := `{"agentId":"att","status":"exited","containerId":"` + strings.Repeat("ab", 32) + `"}`
	tests := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"local process", map[string]string{"Content-Type": "application/json"}, 202},
		{"local process, charset", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 202},
		{"same origin page", map[string]string{"Content-Type": "application/json", "Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}, 202},
		{"text/plain", map[string]string{"Content-Type": "text/plain"}, 415},
		{"no content type", map[string]string{}, 415},
		{"form", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"cross-site page", map[string]string{"Content-Type": "text/plain", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"cross-site page, json", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"other port, same site", map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}, 403},
		{"old browser, Origin only", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, 403},
		{"old browser, own Origin", map[string]string{"Content-Type": "application/json", "Origin": "http://" + host}, 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := send(t, "POST", srv.URL+"/v1/beats", tt.headers, beat); code != tt.want {
				t.Errorf("POST = %d %s, want %d", code, body, tt.want)
			}
		})
	}
	if want := 4; len(in.got) != want {
		t.Errorf("intake took %d beats, want %d", len(in.got), want)
	}
	// Reading stays open to links from elsewhere: the page cannot read the
	// answer (no CORS headers), and a user may follow a link.
	if code, body := send(t, "GET", srv.URL+"/health/agents", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, ""); code != 200 {
		t.Errorf("cross-site GET = %d %s, want 200", code, body)
	}
	if code, body := send(t, "GET", srv.URL+"/health/agents", map[string]string{"Sec-Fetch-Site": "cross-site"}, ""); code != 200 || strings.Contains(body, "Access-Control") {
		t.Errorf("cross-site GET = %d %s", code, body)
	}
}

func TestMetricsHaveEveryState(t *testing.T) {
	srv := serve(t, Config{})
	_, body := do(t, "GET", srv.URL+"/metrics", "", "")
	want := map[monitor.State]int{monitor.Healthy: 1, monitor.Failed: 2, monitor.Stopped: 1}
	for _, s := range monitor.States() {
		line := fmt.Sprintf("beatwatch_agents{state=%q} %d\n", s, want[s])
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(line))
		}
	}
	for _, name := range []string{"beatwatch_beats_received_total", "beatwatch_redis_up 1"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestPage: the page is a shell without data that loads its scripts; an
// agent page exists for a valid id only.
func TestPage(t *testing.T) {
	srv := serve(t, Config{Fleet: fleet{{AgentID: "secret-agent", State: monitor.Missing}}})
	tests := []struct {
		path, want string
		code       int
	}{
		{"/", `src="assets/fleet.js"`, 200},
		{"/agents/secret-agent", `src="../assets/agent.js"`, 200},
		{"/agents/a%20b", "agent not found", 404},
		{"/assets/app.css", ".chip", 200},
		{"/assets/nope.js", "no such endpoint", 404},
	}
	for _, tt := range tests {
		code, body := do(t, "GET", srv.URL+tt.path, "", "")
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s = %d, want %d with %q:\n%s", tt.path, code, tt.code, tt.want, body)
		}
		if strings.Contains(body, "secret-agent") {
			t.Errorf("GET %s shows fleet data without a token", tt.path)
		}
	}
}

// TestAgentsPages pages a real monitor's fleet over HTTP: the counts of the
// whole fleet on every page, worst first, each agent once, next absent on
// the last page; bad parameters are refused with their name.
func TestAgentsPages(t *testing.T) {
	m := monitor.New(monitor.Config{})
	now := time.Now()
	const n = 57
	for i := range n {
		b := wire.Beat{AgentID: fmt.Sprintf("ag-%02d", i), AgentType: "t", Sequence: 1, Status: wire.StatusHealthy, IntervalMs: 1000}
		if i%4 == 0 {
			b.Status = wire.StatusStalled
		}
		m.Observe(b, now)
	}
	srv := serve(t, Config{Fleet: m})
	var got []monitor.Agent
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("more pages than agents")
		}
		code, body := do(t, "GET", srv.URL+"/health/agents?limit=10&cursor="+cursor, "", "")
		var sum Summary
		if code != 200 || json.Unmarshal([]byte(body), &sum) != nil {
			t.Fatalf("page %d = %d %s", pages, code, body)
		}
		if sum.Total != n || sum.Stalled != 15 || sum.Healthy != n-15 || len(sum.Agents) > 10 {
			t.Fatalf("page %d: total %d stalled %d healthy %d, %d agents; want the whole fleet's counts and at most 10", pages, sum.Total, sum.Stalled, sum.Healthy, len(sum.Agents))
		}
		got = append(got, sum.Agents...)
		if sum.Next == "" {
			if strings.Contains(body, `"next"`) {
				t.Errorf("last page carries next: %s", body)
			}
			break
		}
		cursor = sum.Next
	}
	if len(got) != n || got[0].State != monitor.Stalled || got[14].State != monitor.Stalled || got[15].State != monitor.Healthy {
		t.Errorf("pages gave %d agents, want %d, the 15 stalled first", len(got), n)
	}
	seen := map[string]bool{}
	for _, a := range got {
		if seen[a.AgentID] {
			t.Errorf("%s listed twice", a.AgentID)
		}
		seen[a.AgentID] = true
	}

	code, body := do(t, "GET", srv.URL+"/health/agents?limit=0", "", "")
	if code != 200 || !strings.Contains(body, `"agents":[]`) || !strings.Contains(body, fmt.Sprintf(`"total":%d`, n)) {
		t.Errorf("limit=0 = %d %s, want the counts and no agent", code, body)
	}
	for _, bad := range []struct{ query, name string }{
		{"limit=-1", "limit"}, {"limit=x", "limit"}, {"limit=10001", "limit"},
		{"state=dead", "state"}, {"cursor=%21%21", "cursor"}, {"cursor=" + EncodeCursor(monitor.Position{State: "dead", ID: "x"}), "cursor"},
	} {
		code, body := do(t, "GET", srv.URL+"/health/agents?"+bad.query, "", "")
		if code != 400 || !strings.Contains(body, bad.name+" must") {
			t.Errorf("?%s = %d %s, want 400 naming %s", bad.query, code, body, bad.name)
		}
	}
}

// gatedFleet is a real monitor whose large pages wait at a gate, so that a
// test can hold several requests in the middle of being served.
type gatedFleet struct {
	*monitor.Monitor
	entered chan struct{}
	release chan struct{}
}

func (g gatedFleet) Page(q monitor.Query) monitor.Page {
	if q.Limit > LargePage {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Monitor.Page(q)
}

// TestLargePagesAreBounded: at most MaxLargePages pages above LargePage are
// served at once; one more is answered 503 with Retry-After instead of
// making the watcher hold another page (eight at once reached 1.22 GB
// before paging). Small pages are never held up.
func TestLargePagesAreBounded(t *testing.T) {
	m := monitor.New(monitor.Config{})
	for i := range 300 {
		m.Observe(wire.Beat{AgentID: fmt.Sprintf("a-%03d", i), Sequence: 1, Status: wire.StatusHealthy, IntervalMs: 1000}, time.Now())
	}
	g := gatedFleet{Monitor: m, entered: make(chan struct{}, 2*MaxLargePages), release: make(chan struct{})}
	srv := serve(t, Config{Fleet: g})
	var once sync.Once
	open := func() { once.Do(func() { close(g.release) }) }
	t.Cleanup(open) // before the server's own cleanup, which waits for its handlers
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(limit int) (*http.Response, error) {
		resp, err := client.Get(fmt.Sprintf("%s/health/agents?limit=%d", srv.URL, limit))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	codes := make(chan int, MaxLargePages)
	for range MaxLargePages {
		go func() {
			resp, err := get(1000)
			if err != nil {
				codes <- 0
				return
			}
			codes <- resp.StatusCode
		}()
	}
	for i := range MaxLargePages {
		select {
		case <-g.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d large pages started within 10s", i, MaxLargePages)
		}
	}
	if resp, err := get(50); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a page of 50 while %d large ones are served: %v %v, want 200", MaxLargePages, resp, err)
	}
	resp, err := get(1000)
	if err != nil {
		t.Fatalf("one large page more than %d at once: %v, want 503 at once", MaxLargePages, err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("one large page more than %d at once: %d, Retry-After %q; want 503 with Retry-After",
			MaxLargePages, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	open()
	for range MaxLargePages {
		select {
		case code := <-codes:
			if code != http.StatusOK {
				t.Errorf("a large page that had its turn answered %d", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the large pages did not finish within 10s of their release")
		}
	}
	if resp, err := get(1000); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a large page once the others are done: %v %v, want 200", resp, err)
	}
}
