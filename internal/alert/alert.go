package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// Format is how an alert is written for the webhook.
type Format string

// The formats of the alert webhook.
const (
	FormatSlack     Format = "slack"     // {"text": "..."}, for Slack and the many chat tools that speak it
	FormatPagerDuty Format = "pagerduty" // PagerDuty Events API v2
	FormatJSON      Format = "json"      // beatwatch's own plain document
)

// Errors of a Config, matched with errors.Is; the caller names the flag.
var (
	ErrBadURL       = errors.New("must be an http or https URL")
	ErrBadFormat    = errors.New("must be slack, pagerduty or json")
	ErrNoRoutingKey = errors.New("the pagerduty format needs a routing_key in the URL query")
)

// ParseFormat checks a format's name; the empty one is slack. An error
// wraps ErrBadFormat.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case "":
		return FormatSlack, nil
	case FormatSlack, FormatPagerDuty, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("%w, got %q", ErrBadFormat, s)
}

// Step is one step of a recovery, as an alert reports it.
type Step struct {
	Step   string // inspect, restart, replace, alert
	Result string // ok, error, skipped
	// Container is the container the step acted on.
	Container string
	// Detail says why a step was skipped or what came of it.
	Detail string
	// Error is the error text when Result is error.
	Error    string
	At       time.Time
	Duration time.Duration
}

// MarshalJSON writes the step with its duration in milliseconds.
func (s Step) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Step       string    `json:"step"`
		Result     string    `json:"result"`
		Container  string    `json:"container,omitempty"`
		Detail     string    `json:"detail,omitempty"`
		Error      string    `json:"error,omitempty"`
		At         time.Time `json:"at"`
		DurationMs int64     `json:"durationMs"`
	}{s.Step, s.Result, s.Container, s.Detail, s.Error, s.At, s.Duration.Milliseconds()})
}

// FleetAgent is the AgentID of alerts about the whole fleet (the brake). It
// is outside the agent id alphabet, so it never clashes with an agent.
const FleetAgent = "*"

// Alert is one message for humans about one failure of one agent. A
// failure is a stretch of time from an agent's failing to its beating again;
// the watcher names it with FailureID, and every alert about it, repeats and
// the resolve included, carries the same one.
type Alert struct {
	AgentID   string
	FailureID string
	// Summary is the one line a human reads first.
	Summary string
	// Reason says why the agent is judged failed, or why recovery stopped.
	Reason string
	// State is the agent's state: failed, stalled, recovering...
	State string
	// Steps is the recovery history of this failure.
	Steps []Step
	// Details are extra fields, sent as they are.
	Details map[string]any
	// Resolve marks the agent's recovery: the alert is closed.
	Resolve bool
	// At is when it happened; Send fills it in when zero.
	At time.Time
}

// DedupKey is the key that identifies the failure in PagerDuty and in the
// Webhook's repeat suppression.
func (a Alert) DedupKey() string { return "beatwatch/" + a.AgentID + "/" + a.FailureID }

// Config configures a Webhook. Only URL is required.
type Config struct {
	// URL is the webhook alerts are POSTed to, http or https. For pagerduty, a routing_key query parameter gives the
	// integration key (and is not sent on to the server in the URL).
	URL string
	// Format is slack (the default), pagerduty or json.
	Format Format
	// RoutingKey is the PagerDuty integration key when the URL has none.
	RoutingKey string
	// Source names this watcher in PagerDuty events; default the host name.
	Source string
	// Repeat is the least time between two alerts about the same failure
	// (1h).
	Repeat time.Duration
	// QueueSize bounds the alerts waiting to be sent (1000); when it is
	// full the oldest is dropped.
	QueueSize int
	// Attempts is how many times one alert is tried (5). RetryBase (1s)
	// doubles between tries up to RetryMax (1m).
	Attempts            int
	RetryBase, RetryMax time.Duration
	// Timeout bounds one POST (10s).
	Timeout time.Duration
	// Client is the HTTP client; nil means a plain one.
	Client *http.Client
	// Now is the clock for repeat suppression and alert times.
	Now func() time.Time
	// Logger gets a line per alert that could not be delivered.
	Logger *slog.Logger
}

// Stats counts what a Webhook did, for metrics.
type Stats struct {
	Queued     uint64 // accepted by Send
	Suppressed uint64 // repeats inside Repeat, resolves without a delivered trigger
	Dropped    uint64 // pushed out of a full queue
	Sent       uint64 // delivered (2xx)
	Failed     uint64 // given up on
	Retries    uint64 // tries after the first
	Pending    int    // in the queue now
}

// Webhook delivers alerts to one webhook URL. Send queues and returns at once;
// Run, in one goroutine, POSTs them in order, retrying what failed for
// reasons that may pass. An Webhook is safe for concurrent use.
type Webhook struct {
	cfg        Config
	url        string
	routingKey string

	wake chan struct{}

	mu    sync.Mutex
	queue []Alert
	// open holds, per failure, when its last trigger was accepted.
	open map[string]time.Time
	// delivered holds the failures whose trigger reached the server, so
	// that a resolve is sent only for those.
	delivered map[string]bool
	lastPrune time.Time
	stats     Stats
}

// NewWebhook checks cfg and returns a Webhook; call Run to start sending.
// Errors wrap ErrBadURL, ErrBadFormat or ErrNoRoutingKey and quote the
// value.
func NewWebhook(cfg Config) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w, got %q", ErrBadURL, cfg.URL)
	}
	if cfg.Format, err = ParseFormat(string(cfg.Format)); err != nil {
		return nil, err
	}
	key := cfg.RoutingKey
	if q := u.Query(); q.Has("routing_key") {
		key = q.Get("routing_key")
		q.Del("routing_key")
		u.RawQuery = q.Encode()
	}
	if cfg.Format == FormatPagerDuty && key == "" {
		return nil, ErrNoRoutingKey
	}
	if cfg.Source == "" {
		cfg.Source, _ = os.Hostname()
		if cfg.Source == "" {
			cfg.Source = "beatwatch"
		}
	}
	if cfg.Repeat <= 0 {
		cfg.Repeat = time.Hour
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax < cfg.RetryBase {
		cfg.RetryMax = max(time.Minute, cfg.RetryBase)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Webhook{
		cfg: cfg, url: u.String(), routingKey: key,
		wake: make(chan struct{}, 1),
		open: map[string]time.Time{}, delivered: map[string]bool{},
	}, nil
}

// Send queues an alert and returns at once; it never waits for the network.
// It reports whether the alert was queued: a trigger for a failure already
// alerted within Repeat, or a resolve for a failure never alerted, is not.
func (a *Webhook) Send(al Alert) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	if al.At.IsZero() {
		al.At = now
	}
	a.prune(now)
	k := al.DedupKey()
	last, open := a.open[k]
	if al.Resolve {
		if !open {
			a.stats.Suppressed++
			return false
		}
		delete(a.open, k)
	} else {
		if open && now.Sub(last) < a.cfg.Repeat {
			a.stats.Suppressed++
			return false
		}
		a.open[k] = now
	}
	if len(a.queue) >= a.cfg.QueueSize {
		a.queue[0] = Alert{}
		a.queue = a.queue[1:]
		a.stats.Dropped++
	}
	a.queue = append(a.queue, al)
	a.stats.Queued++
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return true
}

// prune forgets failures not alerted for a long time (the watcher forgets
// such agents too), so the Webhook's memory stays bounded.
func (a *Webhook) prune(now time.Time) {
	if now.Sub(a.lastPrune) < a.cfg.Repeat {
		return
	}
	a.lastPrune = now
	keep := max(24*time.Hour, 2*a.cfg.Repeat)
	for k, t := range a.open {
		if now.Sub(t) > keep {
			delete(a.open, k)
			delete(a.delivered, k)
		}
	}
}

// Stats returns the counters.
func (a *Webhook) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Pending = len(a.queue)
	return s
}

// Delivery is how the delivery of one alert ended, for
// beatwatch_alerts_total{event,result}.
type Delivery struct {
	// Event is trigger or resolve.
	Event string
	// Result is ResultSent or ResultFailed.
	Result string
}

// The results of a Delivery.
const (
	ResultSent   = "sent"   // the webhook took it (2xx)
	ResultFailed = "failed" // given up on: a final refusal, or every try failed
)

// Run sends queued alerts until ctx is done, and returns nil then. Alerts
// still queued are not sent. delivered, when not nil, is told how each
// alert's delivery ended, from Run's goroutine; it must not block.
func (a *Webhook) Run(ctx context.Context, delivered func(Delivery)) error {
	if delivered == nil {
		delivered = func(Delivery) {}
	}
	for {
		al, ok := a.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-a.wake:
				continue
			}
		}
		if result := a.deliver(ctx, al); result != "" {
			delivered(Delivery{Event: event(al), Result: result})
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (a *Webhook) pop() (Alert, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		return Alert{}, false
	}
	al := a.queue[0]
	a.queue[0] = Alert{}
	a.queue = a.queue[1:]
	return al, true
}

// deliver POSTs one alert, retrying what may pass: network errors, 5xx and
// 429. Any other answer is final. It returns ResultSent, ResultFailed, or
// "" for a resolve it did not send (its trigger never got through).
func (a *Webhook) deliver(ctx context.Context, al Alert) string {
	k := al.DedupKey()
	if al.Resolve {
		a.mu.Lock()
		ok := a.delivered[k]
		delete(a.delivered, k)
		if !ok {
			a.stats.Suppressed++
		}
		a.mu.Unlock()
		if !ok {
			// Its trigger was dropped or never got through: nobody was
			// told of the failure, so nobody needs to hear it is over.
			return ""
		}
	}
	body, err := a.encode(al)
	if err != nil {
		return a.fail(al, err)
	}
	for try := 1; ; try++ {
		wait, err := a.post(ctx, body)
		if err == nil {
			a.mu.Lock()
			a.stats.Sent++
			if !al.Resolve {
				a.delivered[k] = true
			}
			a.mu.Unlock()
			return ResultSent
		}
		if wait < 0 || try >= a.cfg.Attempts || ctx.Err() != nil {
			return a.fail(al, err)
		}
		if wait == 0 {
			wait = min(a.cfg.RetryBase<<(try-1), a.cfg.RetryMax)
		}
		a.mu.Lock()
		a.stats.Retries++
		a.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return a.fail(al, ctx.Err())
		case <-t.C:
		}
	}
}

func (a *Webhook) fail(al Alert, err error) string {
	a.mu.Lock()
	a.stats.Failed++
	a.mu.Unlock()
	a.cfg.Logger.Warn("alert not delivered", "agent", al.AgentID, "error", err)
	return ResultFailed
}

// post sends one body. On failure it returns how long to wait before the
// next try: 0 for the usual backoff, a server's Retry-After, or -1 when
// trying again is pointless. Errors never carry the URL: webhook URLs hold
// secrets.
func (a *Webhook) post(ctx context.Context, body []byte) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return -1, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "beatwatch")
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("post to webhook: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	err = fmt.Errorf("webhook answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			return min(time.Duration(s)*time.Second, a.cfg.RetryMax), err
		}
		return 0, err
	case resp.StatusCode >= 500:
		return 0, err
	}
	return -1, err
}

// encode renders an alert in the configured format.
func (a *Webhook) encode(al Alert) ([]byte, error) {
	if al.Summary == "" {
		if al.Resolve {
			al.Summary = fmt.Sprintf("agent %s recovered", al.AgentID)
		} else {
			al.Summary = fmt.Sprintf("agent %s failed", al.AgentID)
		}
	}
	if al.Steps == nil {
		al.Steps = []Step{}
	}
	var doc any
	switch a.cfg.Format {
	case FormatPagerDuty:
		doc = pagerDutyEvent(al, a.routingKey, a.cfg.Source)
	case FormatJSON:
		doc = jsonAlert(al)
	default:
		doc = map[string]string{"text": slackText(al)}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode alert for %s: %w", al.AgentID, err)
	}
	return b, nil
}

func event(al Alert) string {
	if al.Resolve {
		return "resolve"
	}
	return "trigger"
}

// jsonAlert is beatwatch's own document.
func jsonAlert(al Alert) any {
	return struct {
		Event     string         `json:"event"`
		AgentID   string         `json:"agentId"`
		FailureID string         `json:"failureId"`
		Summary   string         `json:"summary"`
		State     string         `json:"state,omitempty"`
		Reason    string         `json:"reason,omitempty"`
		Steps     []Step         `json:"steps"`
		Details   map[string]any `json:"details,omitempty"`
		At        time.Time      `json:"at"`
	}{event(al), al.AgentID, al.FailureID, al.Summary, al.State, al.Reason, al.Steps, al.Details, al.At.UTC()}
}

// pdSummaryMax is PagerDuty's limit on payload.summary.
const pdSummaryMax = 1024

// pagerDutyEvent is an Events API v2 event.
func pagerDutyEvent(al Alert, key, source string) any {
	ev := map[string]any{
		"routing_key":  key,
		"event_action": event(al),
		"dedup_key":    al.DedupKey(),
	}
	if al.Resolve {
		return ev
	}
	summary := al.Summary
	// Cut on a character boundary: PagerDuty rejects invalid UTF-8.
	summary = wire.CutUTF8(summary, pdSummaryMax)
	details := map[string]any{}
	for k, v := range al.Details {
		details[k] = v
	}
	details["agentId"] = al.AgentID
	details["failureId"] = al.FailureID
	if al.State != "" {
		details["state"] = al.State
	}
	if al.Reason != "" {
		details["reason"] = al.Reason
	}
	details["steps"] = al.Steps
	ev["client"] = "beatwatch"
	ev["payload"] = map[string]any{
		"summary":        summary,
		"source":         source,
		"severity":       "critical",
		"timestamp":      al.At.UTC().Format(time.RFC3339Nano),
		"component":      al.AgentID,
		"custom_details": details,
	}
	return ev
}

// slackText is the message of the slack format. What comes from agents and
// engines is escaped: Slack reads <...> as links and mentions.
func slackText(al Alert) string {
	var b strings.Builder
	if al.Resolve {
		fmt.Fprintf(&b, ":white_check_mark: *beatwatch*: %s", slackEscape(al.Summary))
	} else {
		fmt.Fprintf(&b, ":rotating_light: *beatwatch*: %s", slackEscape(al.Summary))
	}
	if al.AgentID != FleetAgent {
		fmt.Fprintf(&b, "\nagent: `%s`", slackEscape(al.AgentID))
	}
	if al.State != "" && !al.Resolve {
		fmt.Fprintf(&b, "  state: %s", slackEscape(al.State))
	}
	if al.Reason != "" && !al.Resolve {
		fmt.Fprintf(&b, "\nreason: %s", slackEscape(al.Reason))
	}
	for _, s := range al.Steps {
		fmt.Fprintf(&b, "\n• %s %s", s.Step, s.Result)
		if s.Detail != "" {
			fmt.Fprintf(&b, " (%s)", slackEscape(s.Detail))
		}
		if s.Error != "" {
			fmt.Fprintf(&b, ": %s", slackEscape(s.Error))
		}
	}
	fmt.Fprintf(&b, "\nfailure: %s", slackEscape(al.FailureID))
	return b.String()
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackEscape(s string) string { return slackEscaper.Replace(s) }
