package probe

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Process names one process in a way that survives pid reuse: a pid is given
// to a new process once the old one is gone, but the new one has a later
// start time.
type Process struct {
	PID int
	// Start is when the process started, in clock ticks after boot.
	Start uint64
}

// Lookup returns the live process with pid as it is now. A zombie is not
// live: the error wraps ErrNotFound for it as for a pid nobody has.
func Lookup(procRoot string, pid int) (Process, error) {
	if pid <= 0 {
		return Process{}, fmt.Errorf("pid %d: %w", pid, ErrNotFound)
	}
	s := newReader(procRoot)
	p, err := s.readStat(pid)
	if err != nil || p.zombie() {
		return Process{}, fmt.Errorf("read pid %d: %w", pid, ErrNotFound)
	}
	return Process{PID: pid, Start: p.start}, nil
}

// Group returns the live processes of process group pgid (zombies left out),
// none when the group is empty. It reads the stat file of every process in
// procRoot; processes that vanish meanwhile are skipped.
func Group(procRoot string, pgid int) ([]Process, error) {
	if pgid <= 0 {
		return nil, errors.New("process group must be more than 0")
	}
	s := newReader(procRoot)
	pids, err := appendDirPIDs(nil, s.procPath(0, ""), make([]byte, 16<<10))
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", s.proc, err)
	}
	var out []Process
	for _, pid := range pids {
		p, err := s.readStat(pid)
		if err != nil || p.pgrp != pgid || p.zombie() {
			continue
		}
		out = append(out, Process{PID: pid, Start: p.start})
	}
	return out, nil
}

// newReader is a Sampler used only for its file reading, for the lookups
// above that run once, not at every beat.
func newReader(procRoot string) *Sampler {
	root := filepath.Clean(procRoot)
	if root == "/" {
		root = ""
	}
	return &Sampler{proc: root, path: make([]byte, 0, len(root)+64), buf: make([]byte, 0, 1024)}
}
