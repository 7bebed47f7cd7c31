package sockline

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/beatwrap/beatwrap/internal/wire"
)

func TestParseLineQuery(t *testing.T) {
	tests := []struct {
		in        string
		wantQuery string // "" for a report
		wantErr   string
	}{
		{`{"query":"health"}`, "health", ""},
		{` {"query":"checkpoint"} ` + "\n", "checkpoint", ""},
		{`{"query":null,"task":"t"}`, "", ""},
		{`{"query":""}`, "", "query must be a query name"},
		{`{"query":7}`, "", "query must be a query name"},
		{`{"query":"health","task":"t"}`, "", "carries only query, got task"},
		{`{"query":"health","idle":true}`, "", "got idle"},
		{`{"task":"t"}`, "", ""},
		{`{"progress":150}`, "", "progress"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, q, err := ParseLine([]byte(tt.in))
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLine = %v, want an error with %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("ParseLine: %v", err)
			case tt.wantQuery == "" && q != nil:
				t.Fatalf("ParseLine = query %q, want a report", q.Name)
			case tt.wantQuery != "" && (q == nil || q.Name != tt.wantQuery || r.Task != nil):
				t.Fatalf("ParseLine = %+v, %+v; want query %q", r, q, tt.wantQuery)
			}
		})
	}
}

func TestParseReportRefusesQuery(t *testing.T) {
	_, err := ParseReport([]byte(`{"query":"health"}`))
	if err == nil || !strings.Contains(err.Error(), "query") {
		t.Fatalf("ParseReport(query line) = %v, want an error naming the query", err)
	}
}

func TestQueryRoundTrip(t *testing.T) {
	_, q, err := ParseLine(MarshalQuery(QueryHealth))
	if err != nil || q == nil || q.Name != QueryHealth {
		t.Fatalf("MarshalQuery(%q) parses as %+v, %v", QueryHealth, q, err)
	}
}

func TestMarshalQueryReply(t *testing.T) {
	h := Health{Status: wire.StatusStalled, Reason: "no progress for 5m0s", SinceMs: 1200}
	b, err := MarshalQueryReply(h)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK bool `json:"ok"`
		Health
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("reply %s: %v", b, err)
	}
	if !got.OK || got.Health != h {
		t.Errorf("reply %s decodes as %+v", b, got)
	}
	if !strings.HasPrefix(string(b), `{"ok":true,"status":"stalled"`) {
		t.Errorf("reply %s does not start with ok then the answer's fields", b)
	}
	if b, err := MarshalQueryReply(struct{}{}); err != nil || string(b) != `{"ok":true}` {
		t.Errorf("empty answer: %s, %v", b, err)
	}
	if _, err := MarshalQueryReply([]int{1}); err == nil {
		t.Error("an answer that is not an object was encoded")
	}
}

func TestUnknownQueryErrorNamesIt(t *testing.T) {
	err := UnknownQueryError("frobnicate", []string{"health", "checkpoint"})
	if want := `query "frobnicate" is not known (known: checkpoint, health)`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}
