package progress

import (
	"bufio"
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// MaxConns is how many connections a Server serves at once. More are answered
// with one ok:false line and closed, so a runaway client cannot use up the
// process's file descriptors.
const MaxConns = 256

// MaxConnsPerPeer is how many of those connections one process may hold: a
// client that leaks connections fills its own share, not everybody's.
const MaxConnsPerPeer = MaxConns / 2

// evictAfter is how long a connection must have sent nothing before a new
// one may take its place when all MaxConns are taken. A client that connects
// once and reports now and then keeps its connection while there is room;
// connections that only sit there cannot lock the others out.
const evictAfter = time.Second

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
	// ErrUnsafeFolder means the socket's folder, or one above it, could let
	// another user replace the socket: it belongs to someone else, or others
	// may write to it.
	ErrUnsafeFolder = errors.New("unsafe folder")
)

var (
	okReply      = []byte(`{"ok":true}` + "\n")
	tooLongReply = errorReply(fmt.Sprintf("line is longer than %d bytes", sockline.MaxLineSize))
)

// Server is the progress socket: it reads lines from any number of agent
// connections, hands each valid report or query to its Handler and answers
// every line.
type Server struct {
	path         string
	ln           *net.UnixListener
	file         os.FileInfo // the socket file Listen made: Close removes only that one
	maxConns     int
	maxPerPeer   int
	evictAfter   time.Duration
	replyTimeout time.Duration
	uid          int      // the user the socket serves: ours
	refusedLog   sync.Map // uid → struct{}: each stranger is logged once

	mu    sync.Mutex
	conns map[net.Conn]*connState // nil once closed
	wg    sync.WaitGroup          // one per connection goroutine

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Listen creates the progress socket at path, mode 0600. A missing parent
// folder is created 0700; an existing one is left as it is, but refused with
// ErrUnsafeFolder when it, or a folder above it, belongs to another user
// (root aside) or is writable by others without the sticky bit, as ssh
// refuses such folders: whoever can write there can swap the socket for
// their own and read the agent's reports. A socket file
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
	if err := checkFolder(filepath.Dir(path), os.Geteuid()); err != nil {
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
		maxPerPeer:   MaxConnsPerPeer,
		evictAfter:   evictAfter,
		replyTimeout: replyTimeout,
		uid:          os.Geteuid(),
		conns:        map[net.Conn]*connState{},
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

// checkFolder refuses dir when another user could replace a file in it: dir
// and every folder above it must belong to uid or root, and be writable by
// nobody else unless the sticky bit stops others from renaming or removing
// what is not theirs (/tmp).
func checkFolder(dir string, uid int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("progress socket folder: %w", err)
	}
	// The folder the path names is checked as the kernel will resolve it:
	// a symbolic link is followed, and the folder it leads to is checked.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	for d := abs; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("progress socket folder: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("progress socket folder %s: no owner to check", d)
		}
		switch {
		case !fi.IsDir():
			return fmt.Errorf("progress socket folder %s: %w: not a folder", d, ErrUnsafeFolder)
		case int(st.Uid) != uid && st.Uid != 0:
			return fmt.Errorf("progress socket folder %s: %w: it belongs to uid %d, not to us (uid %d) or root", d, ErrUnsafeFolder, st.Uid, uid)
		case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
			return fmt.Errorf("progress socket folder %s: %w: mode %o lets other users write to it", d, ErrUnsafeFolder, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
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
	Report func(sockline.Report)
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
		st := s.track(c)
		if st == nil {
			continue
		}
		go s.serveConn(c, st, h)
	}
}

// connState is what the server knows of one connection.
type connState struct {
	pid      int32        // the peer's process, from SO_PEERCRED
	lastRead atomic.Int64 // when it last sent anything, unix nanoseconds
}

// peerCred returns the process and user at the other end of c, as the kernel
// recorded them when the peer connected.
func peerCred(c net.Conn) (pid int32, uid uint32, err error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, 0, fmt.Errorf("not a unix connection: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if credErr != nil {
		return 0, 0, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return cred.Pid, cred.Uid, nil
}

// track registers a new connection, or turns it away when the server is
// closed, when the peer is another user, or when the peer already holds its
// share of connections. When all places are taken, the connection that has
// been silent longest makes room, if it has been silent for evictAfter. It
// returns the connection's state, nil when it is not to be served.
func (s *Server) track(c net.Conn) *connState {
	pid, uid, err := peerCred(c)
	if err != nil {
		s.refuse(c, fmt.Sprintf("cannot tell who is connecting: %v", err))
		return nil
	}
	// The socket is 0600 in a folder of ours, so only our user (and root)
	// reaches it; this holds even if a mode is loosened by mistake.
	if int(uid) != s.uid && uid != 0 {
		if _, seen := s.refusedLog.LoadOrStore(uid, struct{}{}); !seen {
			slog.Warn("progress socket: refused a connection from another user", "uid", uid, "pid", pid)
		}
		s.refuse(c, fmt.Sprintf("connections from uid %d are not accepted", uid))
		return nil
	}
	st := &connState{pid: pid}
	st.lastRead.Store(time.Now().UnixNano())
	var evict net.Conn
	s.mu.Lock()
	closed := s.conns == nil
	var refusal string
	switch {
	case closed:
	case s.peerConns(pid) >= s.maxPerPeer:
		// A client that leaks connections makes room among its own.
		if evict = s.idlest(pid); evict == nil {
			refusal = fmt.Sprintf("too many connections from pid %d (%d), try again later", pid, s.maxPerPeer)
		}
	case len(s.conns) >= s.maxConns:
		if evict = s.idlest(anyPeer); evict == nil {
			refusal = fmt.Sprintf("too many connections (%d), try again later", s.maxConns)
		}
	}
	if !closed && refusal == "" {
		if evict != nil {
			delete(s.conns, evict)
		}
		s.conns[c] = st
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if evict != nil {
		// Its goroutine ends on the read error and cleans up; the place is
		// already the new connection's.
		evict.Close()
	}
	if closed {
		c.Close()
		return nil
	}
	if refusal != "" {
		s.refuse(c, refusal)
		return nil
	}
	return st
}

// peerConns counts the connections of process pid. s.mu is held.
func (s *Server) peerConns(pid int32) int {
	n := 0
	for _, st := range s.conns {
		if st.pid == pid {
			n++
		}
	}
	return n
}

// anyPeer makes idlest look at every connection.
const anyPeer = -1

// idlest returns the connection of process pid (or of any, with anyPeer)
// silent the longest, if that is at least evictAfter, else nil. s.mu is held.
func (s *Server) idlest(pid int32) net.Conn {
	var found net.Conn
	oldest := time.Now().Add(-s.evictAfter).UnixNano()
	for c, st := range s.conns {
		if pid != anyPeer && st.pid != pid {
			continue
		}
		if t := st.lastRead.Load(); t <= oldest {
			found, oldest = c, t
		}
	}
	return found
}

// refuse answers c with one ok:false line and closes it.
func (s *Server) refuse(c net.Conn, msg string) {
	// A fresh connection has an empty socket buffer, so this write does not
	// wait; the deadline is there in case it ever does.
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.Write(errorReply(msg))
	c.Close()
}

func (s *Server) serveConn(c net.Conn, st *connState, h Handler) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		if s.conns != nil && s.conns[c] == st {
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
	_ = serveLines(activityReader{c, st}, write, h)
}

// activityReader notes when its connection last sent anything.
type activityReader struct {
	r  io.Reader
	st *connState
}

func (a activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.st.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
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
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, sockline.MaxLineSize) }}

// serveLines reads lines from r until it ends or write fails, and writes one
// reply per line. A line longer than sockline.MaxLineSize (newline
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
// returns the reply to send, newline included; nil when there was no line
// (the connection ended right after a newline). A blank line is answered
// like any other, ok:false: the protocol answers each line, and a client
// that waits for the reply to what it wrote must not wait for ever.
func (h Handler) handleLine(line []byte) []byte {
	if len(line) == 0 {
		return nil
	}
	r, q, err := sockline.ParseLine(line)
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
		return errorReply(sockline.UnknownQueryError(name, slices.Collect(maps.Keys(h.Queries))).Error())
	}
	v, err := fn()
	if err != nil {
		return errorReply(fmt.Sprintf("query %q: %v", name, err))
	}
	b, err := sockline.MarshalQueryReply(v)
	if err != nil {
		return errorReply(fmt.Sprintf("query %q: %v", name, err))
	}
	return append(b, '\n')
}

func errorReply(msg string) []byte {
	b, err := json.Marshal(sockline.Reply{OK: false, Error: msg})
	if err != nil {
		// A struct of a bool and a string always marshals.
		panic(err)
	}
	return append(b, '\n')
}
