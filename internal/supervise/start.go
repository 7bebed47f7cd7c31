package supervise

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Start errors, matched with errors.Is. Exit.ExitCode turns them into 127 and
// 126, the codes a shell uses.
var (
	ErrNotFound      = errors.New("command not found")
	ErrNotExecutable = errors.New("command not executable")
)

// outputDrain bounds how long Run waits, after the child is gone, for the
// last of its output to be copied. Only a process that left the child's group
// (setsid) and still holds the pipe makes it wait that long.
const outputDrain = time.Second

// resolve finds the file that execve will run for name, the way exec.Command
// does, and classifies a failure as ErrNotFound or ErrNotExecutable.
func resolve(name, dir string) (string, error) {
	if !strings.Contains(name, "/") {
		path, err := exec.LookPath(name)
		if err != nil {
			return "", startError(name, err)
		}
		return path, nil
	}
	check := name
	if dir != "" && !filepath.IsAbs(name) {
		// The child changes to dir before execve, so a relative path is
		// relative to dir, not to us.
		check = filepath.Join(dir, name)
	}
	if _, err := exec.LookPath(check); err != nil {
		return "", startError(name, err)
	}
	return name, nil
}

// startError wraps err from looking up or executing name with the sentinel
// that says which exit code it deserves.
func startError(name string, err error) error {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("start %s: %w: %w", name, ErrNotFound, err)
	}
	return fmt.Errorf("start %s: %w: %w", name, ErrNotExecutable, err)
}

// hinted adds cfg.NotFoundHint's answer to err when err says the command
// was not found.
func hinted(cfg *Config, err error) error {
	if cfg.NotFoundHint == nil || !errors.Is(err, ErrNotFound) {
		return err
	}
	if hint := cfg.NotFoundHint(cfg.Argv[0]); hint != "" {
		return fmt.Errorf("%w; %s", err, hint)
	}
	return err
}

// childIO is the child's stdin, stdout and stderr for the whole of Run: the
// same descriptors serve every restart, so the copiers outlive each child.
type childIO struct {
	fds     [3]uintptr
	ours    []*os.File // opened here and handed to children: closed at the end
	reads   []*os.File // read ends of output pipes
	copiers sync.WaitGroup
}

// openIO prepares the child's descriptors from cfg. An output goes through a
// pipe when OnOutput wants to hear of it or when the writer is not a file.
func openIO(cfg *Config, log *slog.Logger) (*childIO, error) {
	c := &childIO{}
	if cfg.Stdin != nil {
		c.fds[0] = cfg.Stdin.Fd()
	} else {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return nil, fmt.Errorf("open stdin: %w", err)
		}
		c.ours = append(c.ours, f)
		c.fds[0] = f.Fd()
	}
	for i, w := range []io.Writer{cfg.Stdout, cfg.Stderr} {
		fd, err := c.output(w, cfg.OnOutput, log)
		if err != nil {
			c.close()
			return nil, err
		}
		c.fds[i+1] = fd
	}
	return c, nil
}

// output returns the descriptor the child writes to for w.
func (c *childIO) output(w io.Writer, onOutput func(), log *slog.Logger) (uintptr, error) {
	f, isFile := w.(*os.File)
	switch {
	case onOutput == nil && isFile && f != nil:
		return f.Fd(), nil
	case onOutput == nil && w == nil:
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return 0, fmt.Errorf("open output: %w", err)
		}
		c.ours = append(c.ours, null)
		return null.Fd(), nil
	}
	if w == nil || (isFile && f == nil) {
		w = io.Discard
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("open output pipe: %w", err)
	}
	c.ours = append(c.ours, pw)
	c.reads = append(c.reads, r)
	c.copiers.Add(1)
	go func() {
		defer c.copiers.Done()
		copyOutput(w, r, onOutput, log)
	}()
	// Fd puts the write end in blocking mode, which is what the child expects.
	return pw.Fd(), nil
}

// copyOutput passes every read on to dst at once, unbuffered, and then tells
// onOutput. A failing dst does not stop the reading: a child blocked on a full
// pipe would be harmed by its own monitoring.
func copyOutput(dst io.Writer, src *os.File, onOutput func(), log *slog.Logger) {
	buf := make([]byte, 32<<10)
	broken := false
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !broken {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					broken = true
					log.Warn("agent output dropped", "error", werr)
				}
			}
			if onOutput != nil {
				onOutput()
			}
		}
		if err != nil {
			return
		}
	}
}

// close releases the descriptors and waits for the copiers: until the pipes
// are drained, or outputDrain at most.
func (c *childIO) close() {
	for _, f := range c.ours {
		f.Close()
	}
	drained := make(chan struct{})
	go func() { c.copiers.Wait(); close(drained) }()
	timer := time.NewTimer(outputDrain)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
	}
	// Closing a read end makes a copier blocked in Read return.
	for _, r := range c.reads {
		r.Close()
	}
	<-drained
}

// childEnv is the environment the child starts with.
func childEnv(cfg *Config) []string {
	env := cfg.Env
	if cfg.StartEnv != nil {
		env = cfg.StartEnv()
	}
	if env == nil {
		env = os.Environ()
	}
	if cfg.OnOutput == nil {
		return env
	}
	// Output is progress only if it arrives when it is written. Python
	// block-buffers stdout that is not a terminal, and our pipe is not one,
	// so a Python agent would look silent for minutes and then speak in 8 KiB
	// bursts. PYTHONUNBUFFERED makes it write each print at once. A value the
	// user set wins. Without OnOutput the child gets beatwrap's own stdout
	// and behaves as it would without us, so the environment is left alone.
	for _, kv := range env {
		if strings.HasPrefix(kv, "PYTHONUNBUFFERED=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "PYTHONUNBUFFERED=1")
}
