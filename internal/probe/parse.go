package probe

import "bytes"

// procStat is what the sampler takes from /proc/<pid>/stat.
type procStat struct {
	pid      int
	ppid     int
	pgrp     int // process group
	state    byte
	threads  int
	ticks    uint64 // utime+stime+cutime+cstime, in clock ticks
	start    uint64 // start time after boot, in clock ticks: tells a reused pid apart
	rssPages uint64
}

// zombie reports whether the process has exited and waits to be reaped. A
// group whose leader thread exited while other threads run also shows state
// Z, but with more than one thread: it is alive.
func (p procStat) zombie() bool {
	return (p.state == 'Z' || p.state == 'X') && p.threads <= 1
}

// Fields of /proc/<pid>/stat counted from the one after comm (proc(5) field
// 3, state, is 0 here).
const (
	fieldState   = 0
	fieldPPID    = 1
	fieldPGrp    = 2
	fieldUTime   = 11
	fieldSTime   = 12
	fieldCUTime  = 13
	fieldCSTime  = 14
	fieldThreads = 17
	fieldStart   = 19
	fieldRSS     = 21
)

// parseStat parses the content of /proc/<pid>/stat. It reports false for a
// file cut short or malformed, which happens when the process vanishes while
// it is read.
func parseStat(pid int, b []byte) (procStat, bool) {
	// comm may hold spaces and parentheses; it ends at the last ')'.
	r := bytes.LastIndexByte(b, ')')
	if r < 0 || r+2 > len(b) {
		return procStat{}, false
	}
	b = b[r+2:]
	st := procStat{pid: pid}
	for i := 0; i <= fieldRSS; i++ {
		sp := bytes.IndexByte(b, ' ')
		if sp < 0 {
			return procStat{}, false
		}
		f := b[:sp]
		b = b[sp+1:]
		var ok bool
		switch i {
		case fieldState:
			if len(f) != 1 {
				return procStat{}, false
			}
			st.state, ok = f[0], true
		case fieldPPID:
			var v uint64
			v, ok = parseUint(f)
			st.ppid = int(v)
		case fieldPGrp:
			var v uint64
			v, ok = parseUint(f)
			st.pgrp = int(v)
		case fieldUTime, fieldSTime, fieldCUTime, fieldCSTime:
			var v uint64
			v, ok = parseUint(f)
			st.ticks += v
		case fieldThreads:
			var v uint64
			v, ok = parseUint(f)
			st.threads = int(v)
		case fieldStart:
			st.start, ok = parseUint(f)
		case fieldRSS:
			st.rssPages, ok = parseUint(f)
		default:
			ok = true
		}
		if !ok {
			return procStat{}, false
		}
	}
	return st, true
}

// parseIO returns read_bytes and write_bytes from the content of
// /proc/<pid>/io.
func parseIO(b []byte) (read, write uint64, ok bool) {
	var haveRead, haveWrite bool
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		key, val, found := bytes.Cut(line, []byte(": "))
		if !found {
			continue
		}
		switch string(key) {
		case "read_bytes":
			read, haveRead = parseUint(val)
		case "write_bytes":
			write, haveWrite = parseUint(val)
		}
	}
	return read, write, haveRead && haveWrite
}

// appendPIDList appends the pids in a children file ("101 102 ") to dst.
func appendPIDList(dst []int, b []byte) []int {
	for len(b) > 0 {
		i := bytes.IndexAny(b, " \n")
		if i < 0 {
			i = len(b)
		}
		if pid, ok := parsePID(b[:i]); ok {
			dst = append(dst, pid)
		}
		b = b[min(i+1, len(b)):]
	}
	return dst
}

// parsePID parses a positive decimal pid.
func parsePID(b []byte) (int, bool) {
	if len(b) > 10 {
		return 0, false
	}
	v, ok := parseUint(b)
	if !ok || v == 0 || v > 1<<31-1 {
		return 0, false
	}
	return int(v), true
}

// parseUint parses a decimal number without sign; strconv would need a string.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
