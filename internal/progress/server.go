package progress

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// MaxConns is how many connections a Server serves at once. More are answered
// with one ok:false line and closed, so a runaway client cannot use up the
// process's file descriptors.
const MaxConns = 256

// replyTimeout is how long a reply may wait for a client that does not read
// its replies; after that the client is dropped. The socket buffer holds
// thousands of replies, so a client that reads at all never gets near it.
const replyTimeout = 5 * time.Second

// maxSocketPath is the longest path a unix socket address holds on Linux:
// sun_path is 108 bytes with the terminating NUL.
const maxSocketPath = 107

// Errors from Listen, matched with errors.Is.
var (
	// ErrInUse means another process is serving on the socket path.
	ErrInUse = errors.New("in use by a running process")
	// ErrNotSocket means something that is not a socket is at the socket
	// path; it is never removed.
	ErrNotSocket = errors.New("exists and is not a socket, leaving it alone")
)

var (
	okReply      = []byte(`{"ok":true}` + "\n")
	tooLongReply = errorReply(fmt.Sprintf("line is longer than %d bytes", wire.MaxLineSize))
)

// Server is the progress socket: it reads lines from any number of agent
// connections, hands each valid report or query to its Handler and answers
// every line.
type Server struct {
	path         string
	ln           *net.UnixListener
	file         os.FileInfo // the socket file Listen made: Close removes only that one
	maxConns     int
	replyTimeout time.Duration

	mu    sync.Mutex
	conns map[net.Conn]struct{} // nil once closed
	wg    sync.WaitGroup        // one per connection goroutine

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Listen creates the progress socket at path, mode 0600. A missing parent
// folder is created 0700; an existing one is left as it is. A socket file
// left by a crashed run (nobody accepts on it) is replaced. A socket that
// someone still serves on gives ErrInUse, and anything at path that is not a
// socket gives ErrNotSocket and is left untouched.
func Listen(path string) (*Server, error) {
	if path == "" {
		return nil, errors.New("progress socket path is empty")
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("progress socket %s: path is %d bytes, more than the %d a unix socket allows", path, len(path), maxSocketPath)
	}
	if err := makeFolder(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on progress socket: %w", err)
	}
	// Close removes the file itself, and only if it is still ours.
	ln.SetUnlinkOnClose(false)
	// The umask is process-wide and cannot be changed safely from one
	// goroutine, so the mode is set after bind.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("progress socket %s: set mode: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("progress socket %s: %w", path, err)
	}
	return &Server{
		path:         path,
		ln:           ln,
		file:         fi,
		maxConns:     MaxConns,
		replyTimeout: replyTimeout,
		conns:        map[net.Conn]struct{}{},
		done:         make(chan struct{}),
	}, nil
}

// makeFolder creates dir 0700 when it does not exist.
func makeFolder(dir string) error {
	_, err := os.Stat(dir)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("progress socket folder: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create progress socket folder: %w", err)
	}
	// MkdirAll applies the umask; the folder is what keeps other users off
	// the socket until its own mode is set, so make sure of it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("progress socket folder: %w", err)
	}
	return nil
}

// removeStale clears the way for a new socket at path: nothing there is
// fine, a socket nobody accepts on is removed, anything else is an error.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("progress socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("progress socket %s: %w", path, ErrNotSocket)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("progress socket %s: %w", path, ErrInUse)
	}
	// Only a refused connection proves nobody is there; a full backlog or a
	// permission problem does not.
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("progress socket %s: check whether it is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale progress socket: %w", err)
	}
	return nil
}

// Path is the socket's file name, for the child's BEATWRAP_SOCKET.
func (s *Server) Path() string { return s.path }

// Handler is what a Server does with the lines it reads. Its functions are
// called from many goroutines at once, before the line's reply is sent, and
// must not block: an agent waits for each reply.
type Handler struct {
	// Report takes each valid report.
	Report func(wire.Report)
	// Queries answers query lines ({"query":"<name>"}) by name. The function
	// returns the fields of the reply, a value that marshals to a JSON
	// object, or an error that the reply carries as ok:false. A name not
	// here is answered with an error naming it.
	Queries map[string]func() (any, error)
}

// Serve accepts connections and answers their lines until ctx is done or
// Close is called, then closes every connection, waits for their goroutines
// and returns nil. Serve is called at most once.
func (s *Server) Serve(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	defer s.wg.Wait()
	var delay time.Duration
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			select {
			case <-s.done:
				return nil
			default:
			}
			// Out of file descriptors and the like: wait and try again, as
			// net/http does. Giving up would take beatwrap, and with it the
			// agent, down over a monitoring problem.
			if delay == 0 {
				delay = 5 * time.Millisecond
				slog.Warn("progress socket: accept", "error", err)
			} else {
				delay = min(2*delay, time.Second)
			}
			select {
			case <-s.done:
				return nil
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		if !s.track(c) {
			continue
		}
		go s.serveConn(c, h)
	}
}

// track registers a new connection, or turns it away when the server is
// closed or full. It reports whether the connection is to be served.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	closed, full := s.conns == nil, len(s.conns) >= s.maxConns
	if !closed && !full {
		s.conns[c] = struct{}{}
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if full && !closed {
		// A fresh connection has an empty socket buffer, so this write does
		// not wait; the deadline is there in case it ever does.
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(errorReply(fmt.Sprintf("too many connections (%d), try again later", s.maxConns)))
	}
	if closed || full {
		c.Close()
		return false
	}
	return true
}

func (s *Server) serveConn(c net.Conn, h Handler) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		if s.conns != nil {
			delete(s.conns, c)
		}
		s.mu.Unlock()
		c.Close()
	}()
	write := func(reply []byte) error {
		c.SetWriteDeadline(time.Now().Add(s.replyTimeout))
		_, err := c.Write(reply)
		return err
	}
	// The error only says why the connection ended; the client is gone
	// either way.
	_ = serveLines(c, write, h)
}

// Close stops Serve, closes every connection and removes the socket file,
// unless another process has put its own socket there since. It is safe to
// call more than once and from any goroutine.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		conns := s.conns
		s.conns = nil
		s.mu.Unlock()
		close(s.done)
		err := s.ln.Close()
		for c := range conns {
			c.Close()
		}
		s.closeErr = errors.Join(err, s.removeFile())
	})
	return s.closeErr
}

func (s *Server) removeFile() error {
	fi, err := os.Lstat(s.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove progress socket: %w", err)
	}
	if !os.SameFile(fi, s.file) {
		return nil
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove progress socket: %w", err)
	}
	return nil
}

// readerPool keeps line buffers between connections: agents that connect
// once per report would otherwise allocate a 64 KiB buffer each time.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, wire.MaxLineSize) }}

// serveLines reads lines from r until it ends or write fails, and writes one
// reply per non-blank line. A line longer than wire.MaxLineSize (newline
// included) is answered as soon as that is known and the rest of it is
// skipped; the lines after it are served as usual. It returns nil when r
// ends.
func serveLines(r io.Reader, write func(reply []byte) error, h Handler) error {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if err := write(tooLongReply); err != nil {
				return err
			}
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return endOfLines(err)
			}
			continue
		}
		if reply := h.handleLine(line); reply != nil {
			if err := write(reply); err != nil {
				return err
			}
		}
		if err != nil {
			return endOfLines(err)
		}
	}
}

func endOfLines(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// handleLine parses one line, applies or answers it when it is valid and
// returns the reply to send, newline included. A blank line gets no reply: it
// is a stray newline ("\n\n", a keep-alive), not a report, and answering it
// would give the client a reply it is not waiting for.
func (h Handler) handleLine(line []byte) []byte {
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	r, q, err := wire.ParseLine(line)
	if err != nil {
		return errorReply(err.Error())
	}
	if q != nil {
		return h.answer(q.Name)
	}
	if h.Report != nil {
		h.Report(r)
	}
	return okReply
}

// answer runs the query called name and returns its reply line.
func (h Handler) answer(name string) []byte {
	fn, ok := h.Queries[name]
	if !ok {
		return errorReply(wire.UnknownQueryError(name, slices.Collect(maps.Keys(h.Queries))).Error())
	}
	v, err := fn()
	if err != nil {
		return errorReply(fmt.Sprintf("query %q: %v", name, err))
	}
	b, err := wire.MarshalQueryReply(v)
	if err != nil {
		return errorReply(fmt.Sprintf("query %q: %v", name, err))
	}
	return append(b, '\n')
}

func errorReply(msg string) []byte {
	b, err := json.Marshal(wire.Reply{OK: false, Error: msg})
	if err != nil {
		// A struct of a bool and a string always marshals.
		panic(err)
	}
	return append(b, '\n')
}
