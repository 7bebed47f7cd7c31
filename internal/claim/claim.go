package claim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/beatwrap/beatwrap/internal/probe"
	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/supervise"
)

// ErrTaken is wrapped by Take's error when an earlier incarnation of the
// agent still runs on this host and was not (or could not be) replaced.
var ErrTaken = errors.New("already runs on this host")

// HeldError is Take's refusal when an earlier incarnation of the agent
// still runs on this host and Options.Replace was not set: replacing it
// would take the claim. It wraps ErrTaken.
type HeldError struct {
	// ID is the agent id.
	ID string
	// Beatwrap is the pid of the beatwrap that holds the claim; 0 when
	// that beatwrap is gone and left its agent running.
	Beatwrap int
	// Agent is the pid of the agent, the leader of its process group; 0
	// when the holder has not started one.
	Agent int
	// Orphan is what the gone beatwrap was set to do with its agent when
	// it died (Options.Orphan), when Beatwrap is 0.
	Orphan string
}

func (e *HeldError) Error() string {
	if e.Beatwrap == 0 {
		return fmt.Sprintf("agent id %q %v: agent pid %d outlived its beatwrap (orphan mode %s)", e.ID, ErrTaken, e.Agent, e.Orphan)
	}
	agent := ""
	if e.Agent != 0 {
		agent = fmt.Sprintf(" (agent pid %d)", e.Agent)
	}
	return fmt.Sprintf("agent id %q %v: beatwrap pid %d runs it%s", e.ID, ErrTaken, e.Beatwrap, agent)
}

func (e *HeldError) Unwrap() error { return ErrTaken }

// Waits while taking a claim over. A beatwrap asked to stop has its grace
// period, then the time to send its final beat (bounded at 2s) and exit:
// stopMargin more. A group left by a beatwrap that ran with --orphan kill is
// ended by that beatwrap's watchdog within milliseconds; watchdogWait
// allows for a loaded machine. poll is how often a wait looks again.
const (
	stopMargin   = 5 * time.Second
	killWait     = 5 * time.Second
	watchdogWait = 2 * time.Second
	recordWait   = time.Second
	poll         = 20 * time.Millisecond
)

// Path is the claim file of agent id: beside the default progress socket.
func Path(id string) string {
	return filepath.Join(progress.DefaultSocketDir(), id+".lock")
}

// Options says which claim to take and what to do about an earlier holder.
type Options struct {
	// Path is the claim file, Path(ID) unless a test says otherwise.
	Path string
	// ID is the agent id, for messages.
	ID string
	// Replace stops an earlier incarnation that still runs instead of
	// refusing to start.
	Replace bool
	// Orphan and Grace are this beatwrap's --orphan and --grace, written in
	// the record for the next one.
	Orphan string
	Grace  time.Duration
	// ProcRoot is "/proc".
	ProcRoot string
	// Log receives the steps of a take-over; nil discards them.
	Log *slog.Logger
}

// Claim is a held claim on an agent id. Its methods do nothing on a nil
// Claim, so a beatwrap that could not take one runs the same code.
type Claim struct {
	f    *os.File
	path string
	proc string
	rec  record
	log  *slog.Logger
}

// record is what the claim file says about its holder.
type record struct {
	ID       string  `json:"id"`
	Beatwrap process `json:"beatwrap"`
	// Agent is the current child, the leader of its process group.
	Agent   *process `json:"agent,omitempty"`
	GraceMs int64    `json:"graceMs"`
	Orphan  string   `json:"orphan"`
}

type process struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Take claims the agent id for this process. When an earlier incarnation of
// the agent runs, it fails with a *HeldError, or with Replace stops it
// first (and fails with an error wrapping ErrTaken if it will not stop). Any other error means the claim could not be checked (a
// folder that cannot be written, say); the caller decides whether to run
// without one.
func Take(ctx context.Context, o Options) (*Claim, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Path == "" {
		o.Path = Path(o.ID)
	}
	self, err := probe.Lookup(o.ProcRoot, os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", o.Path, err)
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, fmt.Errorf("claim %s: %w", o.Path, err)
	}
	// A holder removes the file when it lets go, and whoever was waiting for
	// the lock then holds it on a file nobody will look at again: open the
	// one at the path again. Each round follows an earlier holder's exit.
	for range 10 {
		f, err := os.OpenFile(o.Path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", o.Path, err)
		}
		c := &Claim{f: f, path: o.Path, proc: o.ProcRoot, log: o.Log}
		if err := c.trusted(); err != nil {
			f.Close()
			return nil, err
		}
		if err := c.lock(ctx, o); err != nil {
			f.Close()
			return nil, err
		}
		if !c.isAtPath() {
			f.Close()
			continue
		}
		if err := c.clearLeftAgent(ctx, o); err != nil {
			f.Close()
			return nil, err
		}
		c.rec = record{
			ID:       o.ID,
			Beatwrap: process{PID: self.PID, Start: self.Start},
			GraceMs:  o.Grace.Milliseconds(),
			Orphan:   o.Orphan,
		}
		if err := c.write(); err != nil {
			f.Close()
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("claim %s: the file keeps changing hands", o.Path)
}

// lock takes the lock on c.f; when another beatwrap holds it, it refuses or,
// with Replace, stops that beatwrap and waits for the lock.
func (c *Claim) lock(ctx context.Context, o Options) error {
	if ok, err := c.tryLock(); ok || err != nil {
		return err
	}
	rec, err := c.readHolder(ctx)
	if err != nil {
		return err
	}
	if !o.Replace {
		held := &HeldError{ID: o.ID, Beatwrap: rec.Beatwrap.PID}
		if rec.Agent != nil {
			held.Agent = rec.Agent.PID
		}
		return held
	}
	grace := time.Duration(rec.GraceMs) * time.Millisecond
	c.log.Warn("another beatwrap runs this agent: stopping it to take over", "pid", rec.Beatwrap.PID, "signal", "SIGTERM")
	if err := c.signalHolder(rec, syscall.SIGTERM); err != nil {
		return err
	}
	if ok, err := c.lockWithin(ctx, grace+stopMargin); ok || err != nil {
		if ok {
			c.log.Info("the other beatwrap has stopped", "pid", rec.Beatwrap.PID)
		}
		return err
	}
	c.log.Warn("the other beatwrap did not stop in time: killing it", "pid", rec.Beatwrap.PID, "signal", "SIGKILL")
	if err := c.signalHolder(rec, syscall.SIGKILL); err != nil {
		return err
	}
	if ok, err := c.lockWithin(ctx, killWait); ok || err != nil {
		return err
	}
	return fmt.Errorf("agent id %q %w: beatwrap pid %d kept its claim after SIGKILL", o.ID, ErrTaken, rec.Beatwrap.PID)
}

// readHolder reads the record of the beatwrap that holds the lock. A holder
// writes it just after locking, so an empty or half-written file is read
// again for a moment.
func (c *Claim) readHolder(ctx context.Context) (record, error) {
	deadline := time.Now().Add(recordWait)
	for {
		rec, err := c.read()
		if err == nil && rec.Beatwrap.PID > 0 {
			return rec, nil
		}
		if time.Now().After(deadline) {
			return record{}, fmt.Errorf("claim %s %w: it is locked by a process that does not say who it is", c.path, ErrTaken)
		}
		select {
		case <-ctx.Done():
			return record{}, context.Cause(ctx)
		case <-time.After(poll):
		}
	}
}

// signalHolder sends sig to the beatwrap that holds the lock, after making
// sure the pid is still that process.
func (c *Claim) signalHolder(rec record, sig syscall.Signal) error {
	p, err := probe.Lookup(c.proc, rec.Beatwrap.PID)
	if err != nil || p.Start != rec.Beatwrap.Start {
		return nil // it has just exited; the lock is about to be free
	}
	if err := syscall.Kill(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop beatwrap pid %d: %w", p.PID, err)
	}
	return nil
}

// clearLeftAgent looks at the record of the last holder, which is gone: if
// the agent it ran still runs, it refuses or, with Replace, stops it.
func (c *Claim) clearLeftAgent(ctx context.Context, o Options) error {
	rec, err := c.read()
	if err != nil || rec.Agent == nil || !c.groupAlive(*rec.Agent) {
		return nil
	}
	if rec.Orphan != supervise.OrphanKeep {
		// Its beatwrap's watchdog is killing it right now.
		if gone, err := c.waitGroupGone(ctx, *rec.Agent, watchdogWait); gone || err != nil {
			return err
		}
	}
	pgid := rec.Agent.PID
	if !o.Replace {
		return &HeldError{ID: o.ID, Agent: pgid, Orphan: rec.Orphan}
	}
	grace := time.Duration(rec.GraceMs) * time.Millisecond
	c.log.Warn("the agent's last beatwrap is gone and left it running: stopping it to take over", "pid", pgid, "signal", "SIGTERM")
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop agent pid %d: %w", pgid, err)
	}
	if gone, err := c.waitGroupGone(ctx, *rec.Agent, grace); gone || err != nil {
		return err
	}
	c.log.Warn("grace period over, killing process group", "pid", pgid, "signal", "SIGKILL")
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill agent pid %d: %w", pgid, err)
	}
	if gone, err := c.waitGroupGone(ctx, *rec.Agent, killWait); gone || err != nil {
		return err
	}
	return fmt.Errorf("agent id %q %w: agent pid %d survived SIGKILL", o.ID, ErrTaken, pgid)
}

// groupAlive reports whether the agent recorded as leader, or any process of
// its process group, still runs. The leader's pid is the group's id, and the
// kernel gives a pid to a new process only once no process is left in the
// group of that number. So a leader with another start time means the group
// is long gone, and with no leader at all, the processes left in the group
// are the agent's.
func (c *Claim) groupAlive(leader process) bool {
	if p, err := probe.Lookup(c.proc, leader.PID); err == nil {
		return p.Start == leader.Start
	}
	left, err := probe.Group(c.proc, leader.PID)
	return err == nil && len(left) > 0
}

// waitGroupGone waits up to d for the group to be gone and reports whether
// it is.
func (c *Claim) waitGroupGone(ctx context.Context, leader process, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for c.groupAlive(leader) {
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case <-time.After(poll):
		}
	}
	return true, nil
}

// tryLock takes the lock if it is free.
func (c *Claim) tryLock() (bool, error) {
	for {
		err := syscall.Flock(int(c.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		}
		return false, fmt.Errorf("lock %s: %w", c.path, err)
	}
}

// lockWithin waits up to d for the lock.
func (c *Claim) lockWithin(ctx context.Context, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		if ok, err := c.tryLock(); ok || err != nil {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case <-time.After(poll):
		}
	}
}

// trusted checks that the claim file is ours alone: what it records decides
// which processes a take-over signals, so a file another user could have
// written (in a /tmp folder someone else made) is never acted upon.
func (c *Claim) trusted() error {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(c.f.Fd()), &st); err != nil {
		return fmt.Errorf("claim %s: %w", c.path, err)
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		return fmt.Errorf("claim %s: owned by uid %d with mode %o, not by this user alone: not trusting it", c.path, st.Uid, st.Mode&0o777)
	}
	return nil
}

// isAtPath reports whether the locked file is still the one at the path.
func (c *Claim) isAtPath() bool {
	var locked, atPath syscall.Stat_t
	if syscall.Fstat(int(c.f.Fd()), &locked) != nil || syscall.Stat(c.path, &atPath) != nil {
		return false
	}
	return locked.Dev == atPath.Dev && locked.Ino == atPath.Ino
}

func (c *Claim) read() (record, error) {
	buf := make([]byte, 4096)
	n, err := c.f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return record{}, err
	}
	var rec record
	if err := json.Unmarshal(bytes.TrimSpace(buf[:n]), &rec); err != nil {
		return record{}, err
	}
	return rec, nil
}

func (c *Claim) write() error {
	b, err := json.Marshal(c.rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := c.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write claim %s: %w", c.path, err)
	}
	if err := c.f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("write claim %s: %w", c.path, err)
	}
	return nil
}

// AgentStarted records the agent's new child, so that the next beatwrap
// knows what to look for should this one die and leave it running.
func (c *Claim) AgentStarted(pid int) {
	if c == nil {
		return
	}
	p, err := probe.Lookup(c.proc, pid)
	if err != nil {
		return // already gone: nothing to find later either
	}
	c.rec.Agent = &process{PID: p.PID, Start: p.Start}
	if err := c.write(); err != nil {
		c.log.Warn("cannot record the agent in the claim file", "pid", pid, "error", err)
	}
}

// Release gives the claim up: the file is removed and the lock dropped. Call
// it once the agent has ended.
func (c *Claim) Release() {
	if c == nil {
		return
	}
	os.Remove(c.path)
	c.f.Close()
}
