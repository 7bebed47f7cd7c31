package progress

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// FuzzServeLine feeds arbitrary bytes through serveLines, the loop every
// server connection runs, and so through sockline.ParseLine. It checks that
// nothing panics, that each line gets exactly the reply it should, that every
// reply is {"ok":bool} with a non-empty error when ok is false (and nothing
// else when ok is true, but for the answer to a query), and that every
// accepted report, marshalled again, parses back to the same report.
func FuzzServeLine(f *testing.F) {
	seeds := []string{
		`{"task":"summarise ticket 4312","progress":40,"activeTasks":1,"queueDepth":7,"tokens":1850,"error":"rate limited","idle":false,"quietFor":"20m"}`,
		`{}`,
		"{}\n{}\n\n  \n{\"task\":\"x\"}\r\n",
		`hello`,
		`[1]`,
		`{"task":"x"`,
		`{"progress":"x"}`,
		"{\"progress\":\"\xc3\"}", // the error quotes a byte that is not UTF-8
		`{"progress":150}`,
		`{"progress":-0}`,
		`{"progress":1e400}`,
		`{"progress":100.0000000000001}`,
		`{"tokens":-5}`,
		`{"tokens":1099511627776}`,
		`{"tokens":1099511627777}`,
		`{"tokens":1e-400}`,
		`{"activeTasks":1.5}`,
		`{"activeTasks":0}`,
		`{"quietFor":"1.5ms"}`,
		`{"quietFor":1e300}`,
		`{"quietFor":0.0001}`,
		`{"quietFor":"-1s"}`,
		`{"quietFor":"2562047h47m16.854775807s"}`,
		`{"quietFor":9223372036854}`,
		`{"idle":1}`,
		`{"task":null,"progress":null}`,
		`{"task":"a","task":"b"}`,
		`{"TASK":"upper","Progress":5}`,
		`{"task":"\u00e9\ud83d\ude00\u0000"}`,
		"{\"task\":\"\xff\xfe\"}",
		`{"error":""}`,
		`{"unknown":{"nested":[1,2,3]}}`,
		`{"task":"` + strings.Repeat("a", 600) + `"}`,
		`{"task":"` + strings.Repeat("a", 2000) + "\n",
		// Task cut at wire.MaxTaskLength in the middle of a two-byte rune.
		`{"task":"` + strings.Repeat("a", wire.MaxTaskLength-1) + `é"}`,
		`{"task":"` + strings.Repeat("b", sockline.MaxLineSize) + `"}` + "\n{}\n",
		`{"query":"health"}`,
		`{"query":"health","task":"x"}` + "\n" + `{"query":"nope"}` + "\n" + `{"query":1}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var applied []sockline.Report
		var out bytes.Buffer
		write := func(reply []byte) error {
			out.Write(reply)
			return nil
		}
		h := Handler{
			Report: func(r sockline.Report) { applied = append(applied, r) },
			Queries: map[string]func() (any, error){
				sockline.QueryHealth: func() (any, error) { return sockline.Health{Status: wire.StatusHealthy, Live: true}, nil },
			},
		}
		if err := serveLines(bytes.NewReader(data), write, h); err != nil {
			t.Fatalf("serveLines: %v", err)
		}

		// What each line should get, worked out independently of the reader.
		type want struct {
			ok    bool
			query bool
			err   string
		}
		var wants []want
		lines := bytes.Split(data, []byte("\n"))
		for i, line := range lines {
			if i == len(lines)-1 && len(line) == 0 {
				break // data ended with a newline
			}
			switch {
			case len(line) >= sockline.MaxLineSize: // with its newline, over the limit
				wants = append(wants, want{err: "line is longer than 65536 bytes"})
			case len(bytes.TrimSpace(line)) == 0:
				wants = append(wants, want{err: "empty line"})
			default:
				_, q, err := sockline.ParseLine(line)
				switch {
				case err != nil:
					wants = append(wants, want{err: asJSONText(err.Error())})
				case q != nil && q.Name != sockline.QueryHealth:
					wants = append(wants, want{err: asJSONText(sockline.UnknownQueryError(q.Name, []string{sockline.QueryHealth}).Error())})
				default:
					wants = append(wants, want{ok: true, query: q != nil})
				}
			}
		}

		replies := bytes.Split(out.Bytes(), []byte("\n"))
		if last := replies[len(replies)-1]; len(last) != 0 {
			t.Fatalf("output does not end with a newline: %q", last)
		}
		replies = replies[:len(replies)-1]
		if len(replies) != len(wants) {
			t.Fatalf("%d replies for %d lines: %q", len(replies), len(wants), out.Bytes())
		}
		oks := 0
		for i, b := range replies {
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("reply %d %q is not JSON: %v", i, b, err)
			}
			ok, isBool := got["ok"].(bool)
			if !isBool {
				t.Fatalf("reply %d %q: ok is not a bool", i, b)
			}
			msg, _ := got["error"].(string)
			if !ok && msg == "" {
				t.Fatalf("reply %d %q: ok:false without an error", i, b)
			}
			if ok && !wants[i].query && len(got) != 1 {
				t.Fatalf("reply %d %q: ok:true with more than ok", i, b)
			}
			if ok && wants[i].query && got["status"] != string(wire.StatusHealthy) {
				t.Fatalf("reply %d %q: not the health answer", i, b)
			}
			if ok != wants[i].ok || msg != wants[i].err {
				t.Fatalf("reply %d = %q, want ok:%v error %q", i, b, wants[i].ok, wants[i].err)
			}
			if ok && !wants[i].query {
				oks++
			}
		}
		if oks != len(applied) {
			t.Fatalf("%d ok replies, %d reports applied", oks, len(applied))
		}

		for _, r := range applied {
			line, err := r.Marshal()
			if err != nil {
				t.Fatalf("Marshal(%+v): %v", r, err)
			}
			again, err := sockline.ParseReport(line)
			if err != nil {
				t.Fatalf("accepted report marshals to %s, which ParseReport refuses: %v", line, err)
			}
			if r.Task != nil && utf8.Valid(line) && !utf8.ValidString(*r.Task) {
				t.Fatalf("ParseReport cut a valid task into invalid UTF-8: %q", *r.Task)
			}
			// Marshal writes every set field in a fixed order, so equal
			// lines mean equal reports.
			if line2, err := again.Marshal(); err != nil || string(line2) != string(line) {
				t.Fatalf("report marshals to %s and parses back as %s (%v)", line, line2, err)
			}
		}
	})
}

// asJSONText is s as a JSON string carries it: a reply is JSON, and JSON text
// is UTF-8, so each byte of s that is not part of a valid UTF-8 sequence
// arrives as U+FFFD. The error of a line that quotes such bytes is therefore
// not byte for byte the error ParseReport returned, and must not be.
func asJSONText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
