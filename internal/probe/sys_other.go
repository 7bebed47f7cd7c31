//go:build !linux

package probe

import (
	"io"
	"os"
)

// readFile reads the whole file at path (NUL-terminated) into buf. Only Linux
// has /proc; this version keeps the package building elsewhere.
func readFile(path, buf []byte, _ bool) ([]byte, error) {
	f, err := os.Open(string(path[:len(path)-1]))
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// appendDirPIDs appends the numeric names in the directory at path
// (NUL-terminated) to dst.
func appendDirPIDs(dst []int, path, _ []byte) ([]int, error) {
	entries, err := os.ReadDir(string(path[:len(path)-1]))
	for _, e := range entries {
		if pid, ok := parsePID([]byte(e.Name())); ok {
			dst = append(dst, pid)
		}
	}
	return dst, err
}
