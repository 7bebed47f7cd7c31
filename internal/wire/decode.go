package wire

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the beat decoder that a watcher runs for every beat it
// receives. It is written by hand because encoding/json, with its reflection,
// was 80-90% of a watcher's ingest.
//
// It decodes what beatwrap and clients of the reference design send: a JSON
// object with the beat's fields, spelled as the struct tags spell them,
// unknown fields skipped. Whatever else it meets (a value of the wrong type, a
// number out of its field's range, a key that names a field only when case is
// ignored, an escaped or non-ASCII key, deep nesting, anything that is not
// JSON) makes it give up, and ParseBeat hands the beat to encoding/json
// instead. So it never decides on its own that a beat is bad, and every error
// is encoding/json's, naming the field as before. When it succeeds, the beat
// is the one json.Unmarshal would have produced: FuzzDecodeBeat holds it to
// that.

// maxSkipDepth bounds the nesting of unknown values that the fast path skips;
// deeper ones are left to encoding/json, which has its own limit.
const maxSkipDepth = 64

// beat's string fields, indexes into decoder.spans.
const (
	sAgentID = iota
	sAgentType
	sStatus
	sCurrentTask
	sHost
	sContainerID
	sStallReason
	sOnStall
	numStrings
)

// decoder walks one beat. Its string fields are noted where they are in
// data and made into one string at the end: one allocation for all of them.
type decoder struct {
	data  []byte
	i     int
	spans [numStrings]span
}

// span is where a string's text (between the quotes) is in data; plain text
// is ASCII without escapes, the same decoded.
type span struct {
	from, to int
	plain    bool
}

// decodeBeat decodes data, a whole JSON document, into b, which must be
// zero. It reports false when it cannot be sure of decoding data exactly as
// json.Unmarshal would; b is then left in an undefined state.
func decodeBeat(data []byte, b *Beat) bool {
	d := decoder{data: data}
	d.space()
	if !d.beat(b) {
		return false
	}
	d.space()
	if d.i != len(d.data) {
		return false
	}
	n := 0
	for _, sp := range d.spans {
		n += sp.to - sp.from
	}
	var text strings.Builder
	text.Grow(n)
	var at [numStrings + 1]int
	for k, sp := range d.spans {
		at[k] = text.Len()
		if sp.plain {
			text.Write(data[sp.from:sp.to])
		} else {
			unescape(&text, data[sp.from:sp.to])
		}
	}
	at[numStrings] = text.Len()
	s := text.String()
	str := func(k int) string { return s[at[k]:at[k+1]] }
	b.AgentID = str(sAgentID)
	b.AgentType = str(sAgentType)
	b.Status = canonicalStatus(str(sStatus))
	b.CurrentTask = str(sCurrentTask)
	b.Host = str(sHost)
	b.ContainerID = str(sContainerID)
	b.StallReason = str(sStallReason)
	b.OnStall = str(sOnStall)
	return true
}

// canonicalStatus returns the package's constant for a known status, so that
// a status kept by a consumer does not keep the beat's text alive.
func canonicalStatus(s string) Status {
	switch Status(s) {
	case StatusStarting:
		return StatusStarting
	case StatusHealthy:
		return StatusHealthy
	case StatusBusy:
		return StatusBusy
	case StatusDegraded:
		return StatusDegraded
	case StatusRecovering:
		return StatusRecovering
	case StatusStalled:
		return StatusStalled
	case StatusStopped:
		return StatusStopped
	case StatusExited:
		return StatusExited
	}
	return Status(s)
}

func (d *decoder) beat(b *Beat) bool {
	if !d.open('{') {
		return false
	}
	for first := true; ; first = false {
		key, end, ok := d.key(first)
		if !ok {
			return false
		}
		if end {
			return true
		}
		switch string(key) {
		case "agentId":
			ok = d.str(sAgentID)
		case "agentType":
			ok = d.str(sAgentType)
		case "timestamp":
			ok = d.int64(&b.Timestamp)
		case "sequence":
			ok = d.uint64(&b.Sequence)
		case "status":
			ok = d.str(sStatus)
		case "metrics":
			ok = d.metrics(&b.Metrics)
		case "currentTask":
			ok = d.str(sCurrentTask)
		case "taskProgress":
			ok = d.floatPtr(&b.TaskProgress)
		case "intervalMs":
			ok = d.int64(&b.IntervalMs)
		case "missedBeats":
			ok = d.int(&b.MissedBeats)
		case "host":
			ok = d.str(sHost)
		case "pid":
			ok = d.int(&b.PID)
		case "containerId":
			ok = d.str(sContainerID)
		case "restarts":
			ok = d.int(&b.Restarts)
		case "exitCode":
			ok = d.intPtr(&b.ExitCode)
		case "stallReason":
			ok = d.str(sStallReason)
		case "onStall":
			ok = d.str(sOnStall)
		case "graceMs":
			ok = d.int64(&b.GraceMs)
		case "superseded":
			ok = d.bool(&b.Superseded)
		case "stalledForMs":
			ok = d.int64(&b.StalledForMs)
		default:
			ok = d.unknown(key, beatNames)
		}
		if !ok {
			return false
		}
	}
}

func (d *decoder) metrics(m *Metrics) bool {
	if d.null() {
		return true // null leaves a struct as it was
	}
	if !d.open('{') {
		return false
	}
	for first := true; ; first = false {
		key, end, ok := d.key(first)
		if !ok {
			return false
		}
		if end {
			return true
		}
		switch string(key) {
		case "cpuPercent":
			ok = d.float(&m.CPUPercent)
		case "memoryMB":
			ok = d.float(&m.MemoryMB)
		case "activeTasks":
			ok = d.int(&m.ActiveTasks)
		case "queueDepth":
			ok = d.int(&m.QueueDepth)
		case "tokensUsedThisHour":
			ok = d.int64(&m.TokensUsedThisHour)
		case "errorsLast5Min":
			ok = d.int(&m.ErrorsLast5Min)
		case "processes":
			ok = d.int(&m.Processes)
		case "threads":
			ok = d.int(&m.Threads)
		case "readBytes":
			ok = d.uint64(&m.ReadBytes)
		case "writeBytes":
			ok = d.uint64(&m.WriteBytes)
		default:
			ok = d.unknown(key, metricsNames)
		}
		if !ok {
			return false
		}
	}
}

// beatNames and metricsNames are the JSON names of the fields of Beat and
// Metrics, read from their tags, so that a field added to the structs but not
// to the decoder sends its beats to encoding/json rather than being skipped.
var (
	beatNames    = jsonNames(reflect.TypeFor[Beat]())
	metricsNames = jsonNames(reflect.TypeFor[Metrics]())
)

func jsonNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" {
			name = t.Field(i).Name
		}
		names = append(names, name)
	}
	return names
}

// unknown skips the value of a key that is not one of the decoder's. It gives
// up when encoding/json would take the key for a field: it matches names
// without regard to case.
func (d *decoder) unknown(key []byte, names []string) bool {
	for _, n := range names {
		// key is ASCII (see key), and for ASCII json folds case as
		// EqualFold does.
		if len(n) == len(key) && strings.EqualFold(n, string(key)) {
			return false
		}
	}
	return d.skip(0)
}

// space skips JSON white space.
func (d *decoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// open consumes c and the white space after it.
func (d *decoder) open(c byte) bool {
	if d.i >= len(d.data) || d.data[d.i] != c {
		return false
	}
	d.i++
	d.space()
	return true
}

// key reads the next key of an object and the colon after it, or the end of
// the object (end). Keys that need unescaping or are not ASCII are given up
// on: beats do not have them, and json would have to fold them.
func (d *decoder) key(first bool) (key []byte, end, ok bool) {
	d.space()
	if d.i >= len(d.data) {
		return nil, false, false
	}
	if d.data[d.i] == '}' {
		d.i++
		return nil, true, true
	}
	if !first {
		if d.data[d.i] != ',' {
			return nil, false, false
		}
		d.i++
		d.space()
	}
	if d.i >= len(d.data) || d.data[d.i] != '"' {
		return nil, false, false
	}
	d.i++
	start := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		if c == '"' {
			break
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return nil, false, false
		}
		d.i++
	}
	if d.i >= len(d.data) {
		return nil, false, false
	}
	key = d.data[start:d.i]
	d.i++
	d.space()
	if !d.open(':') {
		return nil, false, false
	}
	return key, false, true
}

// null consumes a null literal if there is one.
func (d *decoder) null() bool {
	return d.literal("null")
}

// bool reads true or false; a null leaves the field as it was.
func (d *decoder) bool(p *bool) bool {
	switch {
	case d.null():
		return true
	case d.literal("true"):
		*p = true
		return true
	case d.literal("false"):
		*p = false
		return true
	}
	return false
}

// str reads a string value, the k-th string field. A null leaves the field
// as it was.
func (d *decoder) str(k int) bool {
	if d.null() {
		return true
	}
	if d.i >= len(d.data) || d.data[d.i] != '"' {
		return false
	}
	d.i++
	from, plain := d.i, true
	for d.i < len(d.data) {
		switch c := d.data[d.i]; {
		case c == '"':
			d.spans[k] = span{from, d.i, plain}
			d.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if !d.escape() {
				return false
			}
			plain = false
		case c >= utf8.RuneSelf:
			plain = false
			d.i++
		default:
			d.i++
		}
	}
	return false
}

// escape reads and checks the escape sequence at d.i.
func (d *decoder) escape() bool {
	if d.i+1 >= len(d.data) {
		return false
	}
	switch d.data[d.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		d.i += 2
		return true
	case 'u':
		if hex4(d.data[d.i:]) < 0 {
			return false
		}
		d.i += 6
		return true
	}
	return false
}

// unescape writes the text of a string that escape has checked, decoded as
// json decodes it: escapes resolved, a surrogate that is not half of a valid
// pair and each byte that is not part of valid UTF-8 made U+FFFD.
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
func (d *decoder) number() ([]byte, bool) {
	start := d.i
	if d.i < len(d.data) && d.data[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i >= len(d.data):
		return nil, false
	case d.data[d.i] == '0':
		d.i++
	case '1' <= d.data[d.i] && d.data[d.i] <= '9':
		d.digits()
	default:
		return nil, false
	}
	if d.i < len(d.data) && d.data[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return nil, false
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return nil, false
		}
	}
	return d.data[start:d.i], true
}

func (d *decoder) digits() int {
	start := d.i
	for d.i < len(d.data) && '0' <= d.data[d.i] && d.data[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

// whole reads a number that must be an integer, as its sign and magnitude.
// json refuses a fraction or an exponent for an integer field, even 1.0.
func (d *decoder) whole() (neg bool, n uint64, ok bool) {
	lit, ok := d.number()
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

func (d *decoder) int64(p *int64) bool {
	if d.null() {
		return true
	}
	n, ok := d.signed(math.MinInt64, math.MaxInt64)
	if ok {
		*p = n
	}
	return ok
}

func (d *decoder) int(p *int) bool {
	if d.null() {
		return true
	}
	n, ok := d.signed(math.MinInt, math.MaxInt)
	if ok {
		*p = int(n)
	}
	return ok
}

func (d *decoder) intPtr(p **int) bool {
	if d.null() {
		*p = nil
		return true
	}
	n, ok := d.signed(math.MinInt, math.MaxInt)
	if ok {
		v := int(n)
		*p = &v
	}
	return ok
}

// signed reads an integer from lo to hi.
func (d *decoder) signed(lo, hi int64) (int64, bool) {
	neg, n, ok := d.whole()
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

func (d *decoder) uint64(p *uint64) bool {
	if d.null() {
		return true
	}
	neg, n, ok := d.whole()
	if !ok || neg { // json refuses even -0 for an unsigned field
		return false
	}
	*p = n
	return true
}

func (d *decoder) float(p *float64) bool {
	if d.null() {
		return true
	}
	f, ok := d.parseFloat()
	if ok {
		*p = f
	}
	return ok
}

func (d *decoder) floatPtr(p **float64) bool {
	if d.null() {
		*p = nil
		return true
	}
	f, ok := d.parseFloat()
	if ok {
		*p = &f
	}
	return ok
}

func (d *decoder) parseFloat() (float64, bool) {
	lit, ok := d.number()
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
// them: most numbers in a beat are such, and need no strconv. Not negative
// ones: -0 is not 0.
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

// skip reads and checks a value that no field takes, as strictly as json
// does: it must be valid JSON all the same.
func (d *decoder) skip(depth int) bool {
	if d.i >= len(d.data) || depth >= maxSkipDepth {
		return false
	}
	switch d.data[d.i] {
	case '"':
		return d.skipString()
	case '{':
		d.i++
		d.space()
		if d.i < len(d.data) && d.data[d.i] == '}' {
			d.i++
			return true
		}
		for {
			if !d.skipString() {
				return false
			}
			d.space()
			if !d.open(':') || !d.skip(depth+1) {
				return false
			}
			d.space()
			if d.i >= len(d.data) {
				return false
			}
			switch d.data[d.i] {
			case ',':
				d.i++
				d.space()
			case '}':
				d.i++
				return true
			default:
				return false
			}
		}
	case '[':
		d.i++
		d.space()
		if d.i < len(d.data) && d.data[d.i] == ']' {
			d.i++
			return true
		}
		for {
			if !d.skip(depth + 1) {
				return false
			}
			d.space()
			if d.i >= len(d.data) {
				return false
			}
			switch d.data[d.i] {
			case ',':
				d.i++
				d.space()
			case ']':
				d.i++
				return true
			default:
				return false
			}
		}
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	_, ok := d.number()
	return ok
}

func (d *decoder) literal(s string) bool {
	if len(d.data)-d.i >= len(s) && string(d.data[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

// skipString reads and checks a string that no field takes. json does not
// look at the UTF-8 of such a string, only at its escapes and control
// characters.
func (d *decoder) skipString() bool {
	if d.i >= len(d.data) || d.data[d.i] != '"' {
		return false
	}
	d.i++
	for d.i < len(d.data) {
		switch c := d.data[d.i]; {
		case c == '"':
			d.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if !d.escape() {
				return false
			}
		default:
			d.i++
		}
	}
	return false
}
