package probe

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// ErrNotFound is wrapped by the error Sample returns when the root process
// cannot be read: it has exited (or never existed).
var ErrNotFound = errors.New("process not found")

// userHZ is the unit of the CPU times in /proc/<pid>/stat. The kernel reports
// them in USER_HZ, which is 100 on every Linux architecture (procfs assumes
// the same).
const userHZ = 100

// Sample is the measured state of one process tree at one moment.
type Sample struct {
	// Processes counts the root and all its descendants alive now (zombies
	// waiting to be reaped are not counted).
	Processes int
	// Threads sums the threads of those processes.
	Threads int
	// CPUPercent is the CPU the tree used since the previous Sample of the
	// same root, as a percentage of one core (100 is one core kept busy,
	// 200 two). It counts children that exited and were reaped inside the
	// tree. It is 0 on the first sample of a root (or of the same pid
	// started again). A process that left the tree since the previous
	// sample (reparented outside it) takes its time out of the sum, so that
	// interval reads low, down to 0, never negative.
	CPUPercent float64
	// MemoryBytes sums the resident memory (RSS) of the processes. Pages
	// shared between them are counted once per process, so it can be more
	// than the tree really holds.
	MemoryBytes uint64
	// ReadBytes and WriteBytes sum read_bytes and write_bytes of
	// /proc/<pid>/io: bytes that went to or came from storage (not pipes or
	// sockets), since each process started, including its reaped children.
	// Best effort: processes whose io file cannot be read are left out, so
	// the sums can drop between samples.
	ReadBytes, WriteBytes uint64
}

// MemoryMB is MemoryBytes in MiB, the unit of a beat's memoryMB.
func (s Sample) MemoryMB() float64 {
	return float64(s.MemoryBytes) / (1 << 20)
}

// childrenMode says how the Sampler finds the children of a process.
type childrenMode int

const (
	childrenUnknown childrenMode = iota // not yet looked
	childrenFiles                       // /proc/<pid>/task/<tid>/children
	childrenScan                        // parent pids from every /proc/<pid>/stat
)

// Sampler samples the process tree rooted at one pid, keeping what it needs
// between samples to compute CPU use. Not safe for concurrent use.
type Sampler struct {
	proc     string // the proc mount point, without a trailing slash
	pageSize uint64
	mode     childrenMode

	// Buffers kept between samples so that a sample allocates nothing.
	path  []byte
	buf   []byte
	queue []int
	tids  []int
	tree  []procStat
	all   []procStat // childrenScan only: every process on the host
	seen  map[int]struct{}

	// CPU baseline: the tree's ticks at the previous sample of this root.
	base struct {
		ok    bool
		pid   int
		start uint64
		ticks uint64
		at    time.Time
	}
}

// NewSampler returns a Sampler that reads the proc file system mounted at
// procRoot: "/proc" in production, a fixture tree in tests.
func NewSampler(procRoot string) (*Sampler, error) {
	if _, err := procfs.NewFS(procRoot); err != nil {
		return nil, fmt.Errorf("open proc file system %s: %w", procRoot, err)
	}
	root := filepath.Clean(procRoot)
	if root == "/" {
		root = ""
	}
	return &Sampler{
		proc:     root,
		pageSize: uint64(os.Getpagesize()),
		path:     make([]byte, 0, len(root)+64),
		buf:      make([]byte, 0, 4096),
		seen:     make(map[int]struct{}),
	}, nil
}

// Sample measures the tree rooted at rootPID as of now. now is the wall time
// the CPU use is measured against; pass time.Now(). The error wraps
// ErrNotFound when the root process is gone; processes below it that vanish
// while they are read are skipped.
func (s *Sampler) Sample(rootPID int, now time.Time) (Sample, error) {
	if err := s.collect(rootPID); err != nil {
		s.base.ok = false
		return Sample{}, err
	}
	var out Sample
	var ticks uint64
	for _, p := range s.tree {
		ticks += p.ticks
		if !p.zombie() {
			out.Processes++
			out.Threads += p.threads
			out.MemoryBytes += p.rssPages * s.pageSize
		}
		// A zombie's I/O, like its CPU time, moves to its parent when it is
		// reaped; reading it until then keeps the sums steady.
		b, err := readFile(s.procPath(p.pid, "/io"), s.buf, true)
		s.buf = b
		if err != nil {
			continue
		}
		if r, w, ok := parseIO(b); ok {
			out.ReadBytes += r
			out.WriteBytes += w
		}
	}
	out.CPUPercent = s.cpuPercent(s.tree[0], ticks, now)
	return out, nil
}

// cpuPercent turns the tree's total ticks into a percentage of one core over
// the time since the previous sample of the same root, and makes this sample
// the new baseline.
func (s *Sampler) cpuPercent(root procStat, ticks uint64, now time.Time) float64 {
	var pct float64
	b := &s.base
	// A new root pid, or the same pid started again: a new baseline.
	if b.ok && b.pid == root.pid && b.start == root.start && now.After(b.at) && ticks > b.ticks {
		pct = float64(ticks-b.ticks) / userHZ / now.Sub(b.at).Seconds() * 100
	}
	b.ok, b.pid, b.start, b.ticks, b.at = true, root.pid, root.start, ticks, now
	return pct
}

// collect fills s.tree with the root's stat followed by its descendants'.
func (s *Sampler) collect(rootPID int) error {
	if rootPID <= 0 {
		return fmt.Errorf("pid %d: %w", rootPID, ErrNotFound)
	}
	if s.mode == childrenScan {
		return s.collectByScan(rootPID)
	}
	root, err := s.readStat(rootPID)
	if err != nil {
		return fmt.Errorf("read pid %d: %w: %w", rootPID, ErrNotFound, err)
	}
	if s.mode == childrenUnknown {
		s.mode = s.detectMode(rootPID)
		if s.mode == childrenScan {
			return s.collectByScan(rootPID)
		}
	}
	s.tree = append(s.tree[:0], root)
	clear(s.seen)
	s.seen[rootPID] = struct{}{}
	s.queue = s.appendChildren(s.queue[:0], root)
	// The queue grows while it is walked: breadth first, down to the leaves.
	for i := 0; i < len(s.queue); i++ {
		pid := s.queue[i]
		// A process reparented to a subreaper inside the tree while the tree
		// is read can be listed twice.
		if _, dup := s.seen[pid]; dup {
			continue
		}
		s.seen[pid] = struct{}{}
		p, err := s.readStat(pid)
		if err != nil {
			continue // exited since its parent listed it
		}
		s.tree = append(s.tree, p)
		s.queue = s.appendChildren(s.queue, p)
	}
	return nil
}

// detectMode tells whether the kernel has children files, by looking for the
// root's: when its task folder is there and the file is not, there are none.
// While the root is alive the answer cannot be told otherwise, and
// childrenUnknown is kept.
func (s *Sampler) detectMode(rootPID int) childrenMode {
	b, err := readFile(s.childrenPath(rootPID, rootPID), s.buf, false)
	s.buf = b
	if err == nil {
		return childrenFiles
	}
	if !errors.Is(err, syscall.ENOENT) {
		return childrenUnknown
	}
	tasks, err := appendDirPIDs(s.tids[:0], s.procPath(rootPID, "/task"), s.buf)
	s.tids = tasks
	if err != nil {
		return childrenUnknown
	}
	return childrenScan
}

// appendChildren appends the pids of p's children to dst. A child belongs to
// the thread that forked it, so a multi-threaded process has one children
// file per thread.
func (s *Sampler) appendChildren(dst []int, p procStat) []int {
	if p.zombie() {
		return dst // its children were handed to a reaper when it exited
	}
	if p.threads == 1 && p.state != 'Z' {
		return s.appendThreadChildren(dst, p.pid, p.pid)
	}
	tids, err := appendDirPIDs(s.tids[:0], s.procPath(p.pid, "/task"), s.buf)
	s.tids = tids
	if err != nil {
		return dst
	}
	for _, tid := range tids {
		dst = s.appendThreadChildren(dst, p.pid, tid)
	}
	return dst
}

func (s *Sampler) appendThreadChildren(dst []int, pid, tid int) []int {
	b, err := readFile(s.childrenPath(pid, tid), s.buf, false)
	s.buf = b
	if err != nil {
		return dst
	}
	return appendPIDList(dst, b)
}

// collectByScan fills s.tree from the stat file of every process, following
// parent pids down from the root. It serves kernels without children files.
func (s *Sampler) collectByScan(rootPID int) error {
	pids, err := appendDirPIDs(s.queue[:0], s.procPath(0, ""), s.buf)
	s.queue = pids
	if err != nil {
		return fmt.Errorf("list processes in %s: %w", s.proc, err)
	}
	s.all = s.all[:0]
	rootAt := -1
	for _, pid := range pids {
		p, err := s.readStat(pid)
		if err != nil {
			continue
		}
		if pid == rootPID {
			rootAt = len(s.all)
		}
		s.all = append(s.all, p)
	}
	if rootAt < 0 {
		return fmt.Errorf("read pid %d: %w", rootPID, ErrNotFound)
	}
	s.tree = append(s.tree[:0], s.all[rootAt])
	slices.SortFunc(s.all, func(a, b procStat) int { return cmp.Compare(a.ppid, b.ppid) })
	// Each process has one parent, so no pid is added twice; the bound only
	// guards against a pid reused while the files were read.
	for i := 0; i < len(s.tree) && len(s.tree) <= len(s.all); i++ {
		parent := s.tree[i].pid
		j, _ := slices.BinarySearchFunc(s.all, parent, func(p procStat, ppid int) int { return cmp.Compare(p.ppid, ppid) })
		for ; j < len(s.all) && s.all[j].ppid == parent; j++ {
			s.tree = append(s.tree, s.all[j])
		}
	}
	return nil
}

// readStat reads and parses /proc/<pid>/stat.
func (s *Sampler) readStat(pid int) (procStat, error) {
	b, err := readFile(s.procPath(pid, "/stat"), s.buf, true)
	s.buf = b
	if err != nil {
		return procStat{}, err
	}
	p, ok := parseStat(pid, b)
	if !ok {
		return procStat{}, fmt.Errorf("parse %s/%d/stat: %w", s.proc, pid, errShortRead)
	}
	return p, nil
}

var errShortRead = errors.New("cut short or malformed")

// procPath returns <proc>/<pid><rest> with a NUL byte at the end, in s.path;
// pid 0 gives <proc><rest>.
func (s *Sampler) procPath(pid int, rest string) []byte {
	p := append(s.path[:0], s.proc...)
	if pid > 0 {
		p = append(p, '/')
		p = strconv.AppendInt(p, int64(pid), 10)
	}
	p = append(p, rest...)
	if len(p) == 0 {
		p = append(p, '/')
	}
	s.path = append(p, 0)
	return s.path
}

// childrenPath returns <proc>/<pid>/task/<tid>/children, NUL-terminated.
func (s *Sampler) childrenPath(pid, tid int) []byte {
	p := s.procPath(pid, "/task/")
	p = strconv.AppendInt(p[:len(p)-1], int64(tid), 10)
	p = append(p, "/children"...)
	s.path = append(p, 0)
	return s.path
}
