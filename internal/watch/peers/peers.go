package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	share "github.com/beatwrap/beatwrap/internal/shard"
)

// Fleet answers for the whole fleet of a sharded deployment: this
// replica's own agents and, asked over HTTP at each request, those of every
// other live replica (GET /health/agents?scope=local). A replica that does
// not answer within the timeout is left out of that answer, and logged.
type Fleet struct {
	Local *monitor.Monitor
	Peers func() []share.Replica // the live replicas but this one
	Token string
	HC    *http.Client
	Log   func(peer string, err error) // a replica that did not answer
}

func (f *Fleet) fetch(path string, each func(peer share.Replica, body *json.Decoder) error) {
	peers := f.Peers()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := f.get(ctx, p.API+path, func(d *json.Decoder) error { return each(p, d) })
			if err != nil && !isNotFound(err) {
				f.Log(p.ID, err)
			}
		}()
	}
	wg.Wait()
}

type notFound struct{}

func (notFound) Error() string { return "not found" }

func isNotFound(err error) bool { _, ok := err.(notFound); return ok }

func (f *Fleet) get(ctx context.Context, u string, decode func(*json.Decoder) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if f.Token != "" {
		req.Header.Set("Authorization", "Bearer "+f.Token)
	}
	resp, err := f.HC.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return notFound{}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return decode(json.NewDecoder(resp.Body))
}

// Page is one page of the whole fleet: this replica's page and each other
// replica's, asked with the same query and merged in the same order (worst
// state first, then id), with the counts summed. Each replica gives at most
// limit agents after the cursor, so the merged first limit are the fleet's.
func (f *Fleet) Page(q monitor.Query) monitor.Page {
	local := f.Local.Page(q)
	out := monitor.Page{Counts: map[monitor.State]int{}, Total: local.Total, Agents: local.Agents}
	for st, n := range local.Counts {
		out.Counts[st] = n
	}
	more := local.Next != nil
	var mu sync.Mutex
	f.fetch("/health/agents?"+peerQuery(q).Encode(), func(_ share.Replica, d *json.Decoder) error {
		var sum dashboard.Summary
		if err := d.Decode(&sum); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		out.Total += sum.Total
		for st, n := range map[monitor.State]int{
			monitor.Healthy: sum.Healthy, monitor.Stalled: sum.Stalled, monitor.Missing: sum.Missing,
			monitor.Failed: sum.Failed, monitor.Recovering: sum.Recovering, monitor.Stopped: sum.Stopped,
		} {
			out.Counts[st] += n
		}
		out.Agents = append(out.Agents, sum.Agents...)
		more = more || sum.Next != ""
		return nil
	})
	slices.SortFunc(out.Agents, func(a, b monitor.Agent) int {
		if c := monitor.Rank(a.State) - monitor.Rank(b.State); c != 0 {
			return c
		}
		return strings.Compare(a.AgentID, b.AgentID)
	})
	// During a handover two replicas may both hold an agent for a moment.
	out.Agents = slices.CompactFunc(out.Agents, func(a, b monitor.Agent) bool { return a.AgentID == b.AgentID })
	if len(out.Agents) > q.Limit {
		out.Agents, more = out.Agents[:q.Limit], true
	}
	if more && len(out.Agents) > 0 {
		last := out.Agents[len(out.Agents)-1]
		out.Next = &monitor.Position{State: last.State, ID: last.AgentID}
	}
	return out
}

// peerQuery is q as another replica is asked it: its own share only.
func peerQuery(q monitor.Query) url.Values {
	v := url.Values{"scope": {dashboard.ScopeLocal}, "limit": {strconv.Itoa(q.Limit)}}
	if q.State != "" {
		v.Set("state", string(q.State))
	}
	if q.Type != "" {
		v.Set("type", q.Type)
	}
	if q.Host != "" {
		v.Set("host", q.Host)
	}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if q.After != (monitor.Position{}) {
		v.Set("cursor", dashboard.EncodeCursor(q.After))
	}
	return v
}

// Get finds one agent, here or at the replica that judges it.
func (f *Fleet) Get(id string) (monitor.Agent, bool) {
	if a, ok := f.Local.Get(id); ok {
		return a, true
	}
	var mu sync.Mutex
	var found monitor.Agent
	ok := false
	q := url.Values{"scope": {dashboard.ScopeLocal}}
	f.fetch("/health/agents/"+url.PathEscape(id)+"?"+q.Encode(), func(_ share.Replica, d *json.Decoder) error {
		var a monitor.Agent
		if err := d.Decode(&a); err != nil {
			return err
		}
		mu.Lock()
		if !ok || a.LastHeartbeat > found.LastHeartbeat {
			found, ok = a, true
		}
		mu.Unlock()
		return nil
	})
	return found, ok
}

// Counts is agents per state across the fleet.
func (f *Fleet) Counts() map[monitor.State]int {
	return f.Page(monitor.Query{}).Counts
}
