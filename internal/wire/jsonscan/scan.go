package jsonscan

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxSkipDepth bounds the nesting of the values that Skip reads; deeper ones
// are left to encoding/json, which has its own limit.
const maxSkipDepth = 64

// Scanner reads one JSON document from the front. Its zero value reads an
// empty document; New gives one that reads data.
type Scanner struct {
	data []byte
	i    int
}

// New returns a Scanner at the start of data.
func New(data []byte) Scanner { return Scanner{data: data} }

// Span is where a string's text (between the quotes) is in the data. Plain
// text is ASCII without escapes: it is the same decoded.
type Span struct {
	From, To int
	Plain    bool
}

// Space skips JSON white space.
func (s *Scanner) Space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// End skips white space and reports whether the document ends there.
func (s *Scanner) End() bool {
	s.Space()
	return s.i == len(s.data)
}

// OpenObject consumes the { that opens an object, and the white space after
// it. Key then reads the object's keys.
func (s *Scanner) OpenObject() bool { return s.open('{') }

// open consumes c and the white space after it.
func (s *Scanner) open(c byte) bool {
	if s.i >= len(s.data) || s.data[s.i] != c {
		return false
	}
	s.i++
	s.Space()
	return true
}

// Key reads the next key of an object and the colon after it, or the end of
// the object (end); first says whether it is the object's first key. Keys
// that need unescaping or are not ASCII are given up on: encoding/json would
// have to fold them to match a field. The key shares the data's memory.
func (s *Scanner) Key(first bool) (key []byte, end, ok bool) {
	s.Space()
	if s.i >= len(s.data) {
		return nil, false, false
	}
	if s.data[s.i] == '}' {
		s.i++
		return nil, true, true
	}
	if !first {
		if s.data[s.i] != ',' {
			return nil, false, false
		}
		s.i++
		s.Space()
	}
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return nil, false, false
	}
	s.i++
	start := s.i
	for s.i < len(s.data) {
		c := s.data[s.i]
		if c == '"' {
			break
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return nil, false, false
		}
		s.i++
	}
	if s.i >= len(s.data) {
		return nil, false, false
	}
	key = s.data[start:s.i]
	s.i++
	s.Space()
	if !s.open(':') {
		return nil, false, false
	}
	return key, false, true
}

// Null consumes a null literal if there is one.
func (s *Scanner) Null() bool {
	return s.literal("null")
}

// Bool reads true or false into *p; a null leaves *p as it was.
func (s *Scanner) Bool(p *bool) bool {
	switch {
	case s.Null():
		return true
	case s.literal("true"):
		*p = true
		return true
	case s.literal("false"):
		*p = false
		return true
	}
	return false
}

// Text reads a string value and notes where its text is in *sp; WriteText
// decodes it. A null leaves *sp as it was.
func (s *Scanner) Text(sp *Span) bool {
	return s.Null() || s.quoted(sp)
}

// quoted reads a string (not null) and notes where its text is in *sp.
func (s *Scanner) quoted(sp *Span) bool {
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return false
	}
	s.i++
	from, plain := s.i, true
	for s.i < len(s.data) {
		switch c := s.data[s.i]; {
		case c == '"':
			*sp = Span{from, s.i, plain}
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if !s.escape() {
				return false
			}
			plain = false
		case c >= utf8.RuneSelf:
			plain = false
			s.i++
		default:
			s.i++
		}
	}
	return false
}

// WriteText writes the text of a string that Text read, decoded as
// encoding/json decodes it: escapes resolved, a surrogate that is not half
// of a valid pair and each byte that is not part of valid UTF-8 made U+FFFD.
func (s *Scanner) WriteText(w *strings.Builder, sp Span) {
	if sp.Plain {
		w.Write(s.data[sp.From:sp.To])
		return
	}
	unescape(w, s.data[sp.From:sp.To])
}

// escape reads and checks the escape sequence at s.i.
func (s *Scanner) escape() bool {
	if s.i+1 >= len(s.data) {
		return false
	}
	switch s.data[s.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
		return true
	case 'u':
		if hex4(s.data[s.i:]) < 0 {
			return false
		}
		s.i += 6
		return true
	}
	return false
}

// unescape writes the decoded text of a string that escape has checked.
func unescape(w *strings.Builder, s []byte) {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch c = s[i+1]; c {
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'u':
				r := hex4(s[i:])
				i += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, hex4(s[i:])); dec != unicode.ReplacementChar {
						i += 6
						r = dec
					} else {
						r = unicode.ReplacementChar
					}
				}
				w.WriteRune(r)
				continue
			}
			w.WriteByte(c)
			i += 2
		case c < utf8.RuneSelf:
			w.WriteByte(c)
			i++
		default:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				w.WriteRune(utf8.RuneError)
			} else {
				w.Write(s[i : i+n])
			}
			i += n
		}
	}
}

// hex4 reads \uXXXX at the start of s, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a JSON number and returns its text.
func (s *Scanner) number() ([]byte, bool) {
	start := s.i
	if s.i < len(s.data) && s.data[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i >= len(s.data):
		return nil, false
	case s.data[s.i] == '0':
		s.i++
	case '1' <= s.data[s.i] && s.data[s.i] <= '9':
		s.digits()
	default:
		return nil, false
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return nil, false
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return nil, false
		}
	}
	return s.data[start:s.i], true
}

func (s *Scanner) digits() int {
	start := s.i
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// whole reads a number that must be an integer, as its sign and magnitude.
// json refuses a fraction or an exponent for an integer field, even 1.0.
func (s *Scanner) whole() (neg bool, n uint64, ok bool) {
	lit, ok := s.number()
	if !ok {
		return false, 0, false
	}
	if lit[0] == '-' {
		neg, lit = true, lit[1:]
	}
	for _, c := range lit {
		if c < '0' || c > '9' {
			return false, 0, false
		}
		digit := uint64(c - '0')
		if n > (math.MaxUint64-digit)/10 {
			return false, 0, false
		}
		n = n*10 + digit
	}
	return neg, n, true
}

// Int64 reads an integer into *p; a null leaves *p as it was.
func (s *Scanner) Int64(p *int64) bool {
	if s.Null() {
		return true
	}
	n, ok := s.signed(math.MinInt64, math.MaxInt64)
	if ok {
		*p = n
	}
	return ok
}

// Int reads an integer into *p; a null leaves *p as it was.
func (s *Scanner) Int(p *int) bool {
	if s.Null() {
		return true
	}
	n, ok := s.signed(math.MinInt, math.MaxInt)
	if ok {
		*p = int(n)
	}
	return ok
}

// IntPtr reads an integer into a new int that *p points to; a null makes *p
// nil.
func (s *Scanner) IntPtr(p **int) bool {
	if s.Null() {
		*p = nil
		return true
	}
	n, ok := s.signed(math.MinInt, math.MaxInt)
	if ok {
		v := int(n)
		*p = &v
	}
	return ok
}

// signed reads an integer from lo to hi.
func (s *Scanner) signed(lo, hi int64) (int64, bool) {
	neg, n, ok := s.whole()
	switch {
	case !ok:
		return 0, false
	case neg && n <= uint64(-(lo+1))+1:
		return int64(-n), true // two's complement: -(1<<63) too
	case !neg && n <= uint64(hi):
		return int64(n), true
	}
	return 0, false
}

// Uint64 reads an unsigned integer into *p; a null leaves *p as it was.
func (s *Scanner) Uint64(p *uint64) bool {
	if s.Null() {
		return true
	}
	neg, n, ok := s.whole()
	if !ok || neg { // json refuses even -0 for an unsigned field
		return false
	}
	*p = n
	return true
}

// Float reads a number into *p; a null leaves *p as it was.
func (s *Scanner) Float(p *float64) bool {
	if s.Null() {
		return true
	}
	f, ok := s.parseFloat()
	if ok {
		*p = f
	}
	return ok
}

// FloatPtr reads a number into a new float64 that *p points to; a null makes
// *p nil.
func (s *Scanner) FloatPtr(p **float64) bool {
	if s.Null() {
		*p = nil
		return true
	}
	f, ok := s.parseFloat()
	if ok {
		*p = &f
	}
	return ok
}

func (s *Scanner) parseFloat() (float64, bool) {
	lit, ok := s.number()
	if !ok {
		return 0, false
	}
	if n, ok := smallUint(lit); ok {
		return float64(n), true
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	return f, err == nil
}

// smallUint reads the integers from 0 to 10^15-1 exactly, as a float64 holds
// them: most numbers in a document such as a beat are such, and need no
// strconv. Not negative ones: -0 is not 0.
func smallUint(lit []byte) (uint64, bool) {
	if len(lit) > 15 {
		return 0, false
	}
	var n uint64
	for _, c := range lit {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// Skip reads and checks a value that the caller has no use for, as strictly
// as json does: it must be valid JSON all the same.
func (s *Scanner) Skip() bool { return s.skip(0) }

func (s *Scanner) skip(depth int) bool {
	if s.i >= len(s.data) || depth >= maxSkipDepth {
		return false
	}
	switch s.data[s.i] {
	case '"':
		return s.skipString()
	case '{':
		s.i++
		s.Space()
		if s.i < len(s.data) && s.data[s.i] == '}' {
			s.i++
			return true
		}
		for {
			if !s.skipString() {
				return false
			}
			s.Space()
			if !s.open(':') || !s.skip(depth+1) {
				return false
			}
			s.Space()
			if s.i >= len(s.data) {
				return false
			}
			switch s.data[s.i] {
			case ',':
				s.i++
				s.Space()
			case '}':
				s.i++
				return true
			default:
				return false
			}
		}
	case '[':
		s.i++
		s.Space()
		if s.i < len(s.data) && s.data[s.i] == ']' {
			s.i++
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			s.Space()
			if s.i >= len(s.data) {
				return false
			}
			switch s.data[s.i] {
			case ',':
				s.i++
				s.Space()
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.number()
	return ok
}

func (s *Scanner) literal(lit string) bool {
	if len(s.data)-s.i >= len(lit) && string(s.data[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// skipString reads and checks a string that nobody takes. json does not look
// at the UTF-8 of such a string, only at its escapes and control characters,
// and neither does quoted.
func (s *Scanner) skipString() bool {
	var sp Span
	return s.quoted(&sp)
}
