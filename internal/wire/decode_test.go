package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// realisticBeats are beats as they arrive at a watcher: from beatwrap (every
// field), from a client of the reference design (its fields only), and from
// beatwrap with a task that needs escaping.
func realisticBeats(t testing.TB) map[string][]byte {
	t.Helper()
	p, code := 40.0, 1
	full := Beat{
		AgentID: "summariser-17", AgentType: "summariser", Timestamp: 1764000000123, Sequence: 4242,
		Status: StatusBusy,
		Metrics: Metrics{CPUPercent: 12.5, MemoryMB: 310.2, ActiveTasks: 1, QueueDepth: 57,
			TokensUsedThisHour: 18500, ErrorsLast5Min: 2, Processes: 3, Threads: 41,
			ReadBytes: 1 << 30, WriteBytes: 123456789},
		CurrentTask: "summarise ticket 4312", TaskProgress: &p, IntervalMs: 10000, MissedBeats: 3,
		Host: "node-7.example.internal", PID: 4711, ContainerID: strings.Repeat("0123456789abcdef", 4),
		Restarts: 2, OnStall: "restart", GraceMs: 10000,
	}
	exited := full
	exited.Status, exited.ExitCode = StatusExited, &code
	escaped := full
	escaped.CurrentTask = "réponse à \"ticket\" <4312>\n\tétape 2/3 ✓"
	mustMarshal := func(b Beat) []byte {
		data, err := MarshalBeat(b)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	return map[string][]byte{
		"beatwrap": mustMarshal(full),
		"final":    mustMarshal(exited),
		"escaped":  mustMarshal(escaped),
		"reference": []byte(`{"agentId":"agent-042","agentType":"summariser","timestamp":1764000000000,` +
			`"sequence":42,"status":"healthy","metrics":{"cpuPercent":12.5,"memoryMB":310,` +
			`"activeTasks":1,"queueDepth":7,"tokensUsedThisHour":18500,"errorsLast5Min":0},` +
			`"currentTask":"summarise ticket 4312","taskProgress":40}`),
	}
}

// TestDecodeBeatTakesRealBeats: the beats a watcher gets in numbers go the
// fast way, and come out as encoding/json makes them.
func TestDecodeBeatTakesRealBeats(t *testing.T) {
	for name, data := range realisticBeats(t) {
		t.Run(name, func(t *testing.T) {
			var got Beat
			if !decodeBeat(data, &got) {
				t.Fatalf("fast decoder gave up on %s", data)
			}
			var want Beat
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			if msg := beatDiff(got, want); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

// TestDecodeBeatKnowsEveryField fills every field of Beat, found by
// reflection, so a field added to the struct and not to the decoder fails
// here rather than costing its beats the slow way.
func TestDecodeBeatKnowsEveryField(t *testing.T) {
	var b Beat
	fill(reflect.ValueOf(&b).Elem())
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var got Beat
	if !decodeBeat(data, &got) {
		t.Fatalf("fast decoder gave up on %s", data)
	}
	if msg := beatDiff(got, b); msg != "" {
		t.Fatal(msg)
	}
}

// fill sets every field of v to something other than its zero value.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("s-" + v.Type().Name())
	case reflect.Int, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint64:
		v.SetUint(8)
	case reflect.Float64:
		v.SetFloat(9.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i))
		}
	default:
		panic("fill: no value for " + v.Type().String())
	}
}

// beatDiff says how two beats differ, or "" when they do not; -0 and 0 are
// different numbers here.
func beatDiff(got, want Beat) string {
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !reflect.DeepEqual(got, want) || !bytes.Equal(g, w) {
		return fmt.Sprintf("got  %s\nwant %s", g, w)
	}
	return ""
}

func TestDecodeBeatLeavesTheOddToEncodingJSON(t *testing.T) {
	// Each of these is decoded or refused by encoding/json in a way the
	// fast path does not copy: it must give up, not guess.
	for _, in := range []string{
		`{"AgentId":"a"}`,      // json matches keys without case
		`{"agentıd":"a"}`,      // non-ASCII key
		`{"agent\u0049d":"a"}`, // escaped key
		`{"pid":1.0}`,          // a fraction for an integer
		`{"pid":1e3}`,          // an exponent for an integer
		`{"sequence":-0}`,      // a sign for an unsigned
		`{"pid":"1"}`,          // a string for a number
		`{"metrics":[]}`,       // an array for an object
		`{"a":1}x`,             // after the object
		`{"a":[1,]}`,           // a stray comma in a skipped value
		`{"timestamp":99999999999999999999}`,
		`{"cpu":1e400,"metrics":{"cpuPercent":1e400}}`,
		`{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	} {
		var b Beat
		if decodeBeat([]byte(in), &b) {
			t.Errorf("%s: fast path did not give up", in)
		}
	}
}

// FuzzDecodeBeat holds the fast decoder to encoding/json: whatever it takes,
// json takes too, with the same result; ParseBeat gives the same beat and
// the same error either way; and every beat ParseBeat accepts, encoded again,
// goes the fast way and comes back the same.
func FuzzDecodeBeat(f *testing.F) {
	for _, data := range realisticBeats(f) {
		f.Add(data)
	}
	for _, s := range []string{
		`{}`, ` { } `, `{"agentId":"a"}`, `{"agentId":null,"agentId":"b"}`,
		`{"agentId":"a","status":"stopped","status":null}`,
		`{"agentId":"a","metrics":{"cpuPercent":1},"metrics":{"memoryMB":2},"metrics":null}`,
		`{"agentId":"a","taskProgress":5,"taskProgress":null}`,
		`{"agentId":"a","taskProgress":-0,"exitCode":-0}`,
		`{"agentId":"a","exitCode":-9223372036854775808,"pid":9223372036854775807}`,
		`{"agentId":"a","pid":9223372036854775808}`,
		`{"agentId":"a","sequence":18446744073709551615}`,
		`{"agentId":"a","sequence":18446744073709551616}`,
		`{"agentId":"a","taskProgress":1e308,"metrics":{"cpuPercent":-1e308}}`,
		`{"agentId":"a","taskProgress":1E-400,"metrics":{"memoryMB":123456789012345678}}`,
		`{"agentId":"a","pid":99999999999,"restarts":9223372036854775807}`,
		`{"agentId":"é"}`, `{"agentId":"a","status":"pwned"}`,
		`{"agentId":"a","currentTask":"\u00e9\ud83d\ude00\ud800x\udc00\u0000\"\\\/\b\f\n\r\t"}`,
		"{\"agentId\":\"a\",\"currentTask\":\"\xff\xc3(\xed\xa0\x80\xef\xbf\xbd\"}",
		"{\"agentId\":\"a\",\"host\":\"tab\there\"}",
		`{"agentId":"a","AGENTTYPE":"x","Metrics":{"CPUPERCENT":1}}`,
		`{"agentId":"a","unknown":{"nested":[1,2.5e-3,-0,true,false,null,"\u12ab",{}]},"x":[]}`,
		`{"agentId":"a","unknown":"\x"}`, `{"agentId":"a","unknown":01}`,
		`{"agentId":"a",}`, `{"agentId":"a"`, `{"agentId" "a"}`, `{"agentId":"a"}}`,
		`{"agentId":"a","timestamp":1.5}`, `{"agentId":"a","timestamp":"1"}`,
		`{"agentId":"a","metrics":{"readBytes":-1}}`, `{"agentId":"a","metrics":5}`,
		`{"agentId":"a","intervalMs":-1,"missedBeats":-1,"graceMs":-1}`,
		`{"agentId":"a","ſtatus":"stopped"}`, `{"agentId":"a","K":1}`,
		"{\"agentId\":\"a\"}\n", "{\"agentId\"\t:\r\n\"a\" }",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(sameAsJSON)
}

// FuzzDecodeBeatField is FuzzDecodeBeat with the shape of a beat given: one
// field, at the top or in metrics, so the fuzzer spends its time on the
// values (numbers at the edges of their types, escapes, odd bytes).
func FuzzDecodeBeatField(f *testing.F) {
	for _, n := range append(append([]string{}, beatNames...), metricsNames...) {
		for _, v := range []string{`1`, `-0`, `1.5e3`, `"x"`, `null`, `9223372036854775808`, `"\ud83d\ude00"`} {
			f.Add(n, v)
		}
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		sameAsJSON(t, []byte(`{"agentId":"a",`+strconv.Quote(name)+`:`+value+`}`))
		sameAsJSON(t, []byte(`{"agentId":"a","metrics":{`+strconv.Quote(name)+`:`+value+`}}`))
	})
}

// sameAsJSON fails t unless the fast path agrees with encoding/json on data.
func sameAsJSON(t *testing.T, data []byte) {
	t.Helper()
	var got, want Beat
	ok := decodeBeat(data, &got)
	err := json.Unmarshal(data, &want)
	if ok {
		if err != nil {
			t.Fatalf("fast path took %q, which json refuses: %v", data, err)
		}
		if msg := beatDiff(got, want); msg != "" {
			t.Fatalf("%q:\n%s", data, msg)
		}
	}

	fast, fastErr := readBeat(data, true)
	slow, slowErr := readBeat(data, false)
	if fmt.Sprint(fastErr) != fmt.Sprint(slowErr) {
		t.Fatalf("%q: error %v, encoding/json's %v", data, fastErr, slowErr)
	}
	if msg := beatDiff(fast, slow); msg != "" {
		t.Fatalf("%q:\n%s", data, msg)
	}
	if fastErr != nil {
		return
	}

	again, err := MarshalBeat(fast)
	if err != nil {
		t.Fatal(err)
	}
	var back Beat
	if !decodeBeat(again, &back) {
		t.Fatalf("fast path gave up on an encoded beat: %s", again)
	}
	if msg := beatDiff(back, fast); msg != "" {
		t.Fatalf("round trip of %s:\n%s", again, msg)
	}
}

// BenchmarkParseBeat sets the two decoders side by side on the same beats:
// encoding/json (as before) and the hand-written one (ParseBeat now). Both
// include the checks that follow decoding. The malformed beat shows that a
// beat the fast path gives up on costs about what it did before.
func BenchmarkParseBeat(b *testing.B) {
	beats := realisticBeats(b)
	// A beat the fast path gives up on late (a pid sent as a string): what
	// a bad beat costs now, beside what it cost before.
	beats["malformed"] = bytes.Replace(beats["beatwrap"], []byte(`"pid":4711`), []byte(`"pid":"4711"`), 1)
	for _, name := range []string{"beatwrap", "reference", "escaped", "malformed"} {
		data := beats[name]
		wantErr := name == "malformed"
		for _, dec := range []struct {
			name string
			fast bool
		}{{"encoding-json", false}, {"wire", true}} {
			b.Run(name+"/"+dec.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if _, err := readBeat(data, dec.fast); (err != nil) != wantErr {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
