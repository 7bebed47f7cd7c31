package jsonscan

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// agree fails t when a Scanner takes data as a value of some kind and
// encoding/json does not, or takes it with another value.
func agree(t *testing.T, data []byte) {
	t.Helper()
	scan := func(read func(*Scanner) bool) bool {
		s := New(data)
		s.Space()
		return read(&s) && s.End()
	}
	if scan((*Scanner).Skip) && !json.Valid(data) {
		t.Fatalf("Skip took %q, which json refuses", data)
	}

	var sp Span
	s := New(data)
	s.Space()
	if s.Text(&sp) && s.End() && sp != (Span{}) {
		var want string
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("Text took %q, which json refuses: %v", data, err)
		}
		var got strings.Builder
		s.WriteText(&got, sp)
		if got.String() != want {
			t.Fatalf("Text of %q: got %q, want %q", data, got.String(), want)
		}
	}

	var i64 int64
	if scan(func(s *Scanner) bool { return s.Int64(&i64) }) {
		var want int64
		if err := json.Unmarshal(data, &want); err != nil || want != i64 {
			t.Fatalf("Int64 of %q: got %d, json %d, %v", data, i64, want, err)
		}
	}
	var u64 uint64
	if scan(func(s *Scanner) bool { return s.Uint64(&u64) }) {
		var want uint64
		if err := json.Unmarshal(data, &want); err != nil || want != u64 {
			t.Fatalf("Uint64 of %q: got %d, json %d, %v", data, u64, want, err)
		}
	}
	var f float64
	if scan(func(s *Scanner) bool { return s.Float(&f) }) {
		var want float64
		if err := json.Unmarshal(data, &want); err != nil || math.Float64bits(want) != math.Float64bits(f) {
			t.Fatalf("Float of %q: got %v, json %v, %v", data, f, want, err)
		}
	}
}

// TestScannerReadsWhatJSONReads: values of every kind, and each read as
// encoding/json reads it.
func TestScannerReadsWhatJSONReads(t *testing.T) {
	for _, tt := range []struct {
		in   string
		read func(*Scanner) bool
	}{
		{`{"a":[1,2.5e-3,-0,true,false,null,"\u12ab",{}],"b":{}}`, (*Scanner).Skip},
		{` "tab\tand \"quotes\" \ud83d\ude00 \ud800x é" `, func(s *Scanner) bool { var sp Span; return s.Text(&sp) }},
		{`-9223372036854775808`, func(s *Scanner) bool { var n int64; return s.Int64(&n) }},
		{`18446744073709551615`, func(s *Scanner) bool { var n uint64; return s.Uint64(&n) }},
		{`-1.5e308`, func(s *Scanner) bool { var f float64; return s.Float(&f) }},
		{`123456789012345`, func(s *Scanner) bool { var f float64; return s.Float(&f) }},
	} {
		s := New([]byte(tt.in))
		s.Space()
		if !tt.read(&s) || !s.End() {
			t.Errorf("%s: not read", tt.in)
		}
		agree(t, []byte(tt.in))
	}
}

// TestScannerGivesUp: what the Scanner does not copy from encoding/json, or
// what is not JSON, is refused rather than guessed.
func TestScannerGivesUp(t *testing.T) {
	for _, tt := range []struct {
		in   string
		read func(*Scanner) bool
	}{
		{`[1,]`, (*Scanner).Skip},
		{`01`, (*Scanner).Skip},
		{`"\x"`, (*Scanner).Skip},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), (*Scanner).Skip},
		{`1.0`, func(s *Scanner) bool { var n int64; return s.Int64(&n) }},
		{`1e3`, func(s *Scanner) bool { var n int64; return s.Int64(&n) }},
		{`9223372036854775808`, func(s *Scanner) bool { var n int64; return s.Int64(&n) }},
		{`-0`, func(s *Scanner) bool { var n uint64; return s.Uint64(&n) }},
		{`1e400`, func(s *Scanner) bool { var f float64; return s.Float(&f) }},
		{`"1"`, func(s *Scanner) bool { var f float64; return s.Float(&f) }},
	} {
		s := New([]byte(tt.in))
		if tt.read(&s) && s.End() {
			t.Errorf("%s: read, want given up", tt.in)
		}
	}
	// A key that encoding/json would have to unescape or fold.
	for _, in := range []string{`{"\u0061":1}`, `{"ſ":1}`} {
		s := New([]byte(in))
		if !s.OpenObject() {
			t.Fatalf("%s: no object", in)
		}
		if key, _, ok := s.Key(true); ok {
			t.Errorf("%s: key %q read, want given up", in, key)
		}
	}
}

// FuzzScanner holds every way of reading a value to encoding/json: whatever
// the Scanner takes, json takes too, with the same value.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `true`, `"a"`, `"\u00e9\ud83d\ude00\ud800x\udc00\u0000\"\\\/\b\f\n\r\t"`,
		"\"\xff\xc3(\xed\xa0\x80\xef\xbf\xbd\"", `-0`, `0.5`, `1E-400`, `123456789012345678`,
		`-9223372036854775809`, `18446744073709551616`, `{"a":{"b":[1,{"c":null}]}}`, ` 7 `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(agree)
}
