package cli

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ScrubEnv removes the variables named from this process's environment, both
// Go's copy (os.Getenv, children started later) and the block the kernel
// shows in /proc/<pid>/environ to any process of the same user, such as the
// agent beatwrap runs. os.Unsetenv alone leaves that block as the process
// was started with: it is the initial stack, which Go copies from and never
// writes. Its bytes are overwritten in place through /proc/self/mem, with
// NULs, so the entry reads as empty and the secret is gone from memory too.
// It reports which of the variables were set; an error means the block could
// not be rewritten (a kernel that refuses writes to /proc/self/mem) and the
// values can still be read there.
func ScrubEnv(names ...string) ([]string, error) {
	var set []string
	for _, n := range names {
		if _, ok := os.LookupEnv(n); ok {
			set = append(set, n)
			os.Unsetenv(n)
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	start, end, err := envBounds()
	if err != nil {
		return set, err
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return set, fmt.Errorf("rewrite environment: %w", err)
	}
	defer mem.Close()
	block := make([]byte, end-start)
	if _, err := mem.ReadAt(block, int64(start)); err != nil {
		return set, fmt.Errorf("read environment block: %w", err)
	}
	scrubbed := scrubBlock(block, set)
	if _, err := mem.WriteAt(scrubbed, int64(start)); err != nil {
		return set, fmt.Errorf("rewrite environment block: %w", err)
	}
	return set, nil
}

// scrubBlock returns block (NUL-separated NAME=value entries) with the value
// of every entry named in names overwritten with NULs.
func scrubBlock(block []byte, names []string) []byte {
	out := bytes.Clone(block)
	off := 0
	for _, entry := range bytes.Split(block, []byte{0}) {
		name, _, found := bytes.Cut(entry, []byte("="))
		if found {
			for _, n := range names {
				if string(name) == n {
					clear(out[off+len(name)+1 : off+len(entry)])
				}
			}
		}
		off += len(entry) + 1
	}
	return out
}

// envBounds reads where the kernel keeps this process's initial environment:
// env_start and env_end, fields 50 and 51 of /proc/self/stat.
func envBounds() (start, end uint64, err error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("find environment block: %w", err)
	}
	// The command name (field 2) may hold spaces and parentheses: the fields
	// after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("find environment block: /proc/self/stat is not as expected")
	}
	fields := strings.Fields(string(b[i+1:]))
	const envStart = 50 - 3 // fields[0] is field 3
	if len(fields) <= envStart+1 {
		return 0, 0, fmt.Errorf("find environment block: /proc/self/stat has %d fields, the kernel is older than 3.5", len(fields)+2)
	}
	if start, err = strconv.ParseUint(fields[envStart], 10, 64); err == nil {
		end, err = strconv.ParseUint(fields[envStart+1], 10, 64)
	}
	if err != nil || end < start {
		return 0, 0, fmt.Errorf("find environment block: bad env_start/env_end in /proc/self/stat")
	}
	return start, end, nil
}
