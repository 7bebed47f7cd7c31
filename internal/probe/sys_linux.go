//go:build linux

package probe

import (
	"bytes"
	"encoding/binary"
	"slices"
	"syscall"
	"unsafe"
)

// atFDCWD is AT_FDCWD from <fcntl.h>: a relative path starts at the working
// directory. A variable, because a negative constant cannot become a uintptr.
var atFDCWD = -100

// open opens path, which ends in a NUL byte, read-only. It calls openat
// itself because syscall.Open copies its string argument to the heap, and the
// sampler opens a few files per process at every beat.
func open(path []byte, flags int) (int, error) {
	for {
		fd, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(atFDCWD),
			uintptr(unsafe.Pointer(&path[0])), uintptr(flags|syscall.O_RDONLY|syscall.O_CLOEXEC), 0, 0, 0)
		switch errno {
		case 0:
			return int(fd), nil
		case syscall.EINTR:
			continue
		default:
			return -1, errno
		}
	}
}

// readFile reads the whole file at path (NUL-terminated) into buf, growing
// it if needed, and returns it. The result aliases buf.
//
// With oneRead, a read that leaves room in buf is taken as the whole file,
// which saves the read that would return end of file. That holds for files
// the kernel writes out in one piece, like /proc/<pid>/stat and
// /proc/<pid>/io, not for files of many records, like children.
func readFile(path, buf []byte, oneRead bool) ([]byte, error) {
	fd, err := open(path, 0)
	if err != nil {
		return buf[:0], err
	}
	defer syscall.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 1024))
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return buf, err
		case n == 0:
			return buf, nil
		}
		room := cap(buf) - len(buf)
		buf = buf[:len(buf)+n]
		if oneRead && n < room {
			return buf, nil
		}
	}
}

// appendDirPIDs appends the numeric names in the directory at path
// (NUL-terminated) to dst, using buf (at least 4 KiB) for the directory
// entries.
func appendDirPIDs(dst []int, path, buf []byte) ([]int, error) {
	fd, err := open(path, syscall.O_DIRECTORY)
	if err != nil {
		return dst, err
	}
	defer syscall.Close(fd)
	buf = buf[:cap(buf)]
	for {
		n, err := syscall.Getdents(fd, buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return dst, err
		case n <= 0:
			return dst, nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for d := buf[:n]; len(d) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(d[16:18]))
			if reclen < 19 || reclen > len(d) {
				break
			}
			name := d[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if pid, ok := parsePID(name); ok {
				dst = append(dst, pid)
			}
			d = d[reclen:]
		}
	}
}
