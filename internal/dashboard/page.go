package dashboard

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
)

// pageLimit is how many agents the page lists: the worst of the fleet.
const pageLimit = 200

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"age": func(ms int64) string {
		if ms == 0 {
			return "never"
		}
		return time.Since(time.UnixMilli(ms)).Round(100 * time.Millisecond).String()
	},
	"progress": func(p *float64) string {
		if p == nil {
			return ""
		}
		return fmt.Sprintf("%.0f%%", *p)
	},
	"last": func(steps []monitor.Step) string {
		if len(steps) == 0 {
			return ""
		}
		s := steps[len(steps)-1]
		out := s.Step + ": " + s.Result
		if s.Error != "" {
			out += " (" + s.Error + ")"
		}
		return out
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="2">
<title>beatwatch: {{.Total}} agents</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;white-space:nowrap}
td.task,td.status{white-space:normal;min-width:12em;max-width:28em}
.s{display:inline-block;padding:.1em .5em;border-radius:.8em;font-weight:600}
.healthy{background:#d4f4dd}.stalled{background:#ffe7a8}.missing{background:#ffd8b0}
.failed{background:#ffc4c4}.recovering{background:#d6e4ff}.stopped{background:#e4e4e4}
.counts span{margin-right:1.2em}
</style></head><body>
<h1>beatwatch</h1>
<p class="counts"><span>{{.Total}} agents</span>
<span class="s healthy">{{.Healthy}} healthy</span><span class="s stalled">{{.Stalled}} stalled</span>
<span class="s missing">{{.Missing}} missing</span><span class="s failed">{{.Failed}} failed</span>
<span class="s recovering">{{.Recovering}} recovering</span><span class="s stopped">{{.Stopped}} stopped</span></p>
<table><thead><tr><th>agent</th><th>type</th><th>state</th><th>status</th><th>last beat</th>
<th>task</th><th>progress</th><th>CPU %</th><th>memory MB</th><th>restarts</th><th>host</th><th>last recovery</th></tr></thead>
<tbody>{{range .Agents}}<tr>
<td>{{.AgentID}}</td><td>{{.AgentType}}</td><td><span class="s {{.State}}">{{.State}}</span></td>
<td class="status">{{.Status}}{{if .StallReason}}: {{.StallReason}}{{end}}</td><td>{{age .LastHeartbeat}} ago</td>
<td class="task">{{.CurrentTask}}</td><td>{{progress .TaskProgress}}</td>
<td>{{printf "%.1f" .Metrics.CPUPercent}}</td><td>{{printf "%.0f" .Metrics.MemoryMB}}</td>
<td>{{.Restarts}}</td><td>{{.Host}}</td><td>{{last .Recoveries}}</td>
</tr>{{else}}<tr><td colspan="12">No agent has beaten yet.</td></tr>{{end}}</tbody></table>
{{if .Next}}<p>The {{len .Agents}} worst of {{.Total}} agents; the rest: <a href="health/agents">JSON</a>, by page.</p>{{end}}
<p><a href="health/agents">JSON</a> · <a href="metrics">metrics</a></p>
</body></html>
`))

// page shows the counts of the whole fleet and its first page, worst
// first, never the whole fleet.
func (s *server) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	sum := pageSummary(s.cfg.Fleet.Page(monitor.Query{Limit: pageLimit}))
	if err := pageTmpl.Execute(w, sum); err != nil {
		s.cfg.Log.Warn("render dashboard page", "error", err)
	}
}
