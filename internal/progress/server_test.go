package progress

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// socketPath is a socket path in a fresh temporary folder.
func socketPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "p.sock")
	if len(p) > maxSocketPath {
		t.Fatalf("temporary socket path %s is too long for a unix socket", p)
	}
	return p
}

// serve runs a Server on srv until the test ends, applying to a fresh
// Tracker, and checks that Serve returns when asked to.
func serve(t *testing.T, srv *Server) *Tracker {
	t.Helper()
	tr := NewTracker(TrackerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, Handler{Report: tr.Apply}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return within 5s of its context ending")
		}
	})
	return tr
}

// startServer listens on a fresh path and serves.
func startServer(t *testing.T) (*Server, *Tracker) {
	t.Helper()
	srv, err := Listen(socketPath(t))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	return srv, serve(t, srv)
}

// rawConn is a plain connection for writing lines a Report cannot express.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// write sends bytes as they are.
func (c *rawConn) write(t *testing.T, data string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, data); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// reply reads one reply line.
func (c *rawConn) reply(t *testing.T) sockline.Reply {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read reply: %v (got %q)", err, line)
	}
	var got struct {
		OK    *bool   `json:"ok"`
		Error *string `json:"error"`
	}
	if err := json.Unmarshal([]byte(line), &got); err != nil || got.OK == nil {
		t.Fatalf("reply %q is not {\"ok\":bool,...}: %v", line, err)
	}
	r := sockline.Reply{OK: *got.OK}
	if got.Error != nil {
		r.Error = *got.Error
	}
	return r
}

func (c *rawConn) send(t *testing.T, line string) sockline.Reply {
	t.Helper()
	c.write(t, line+"\n")
	return c.reply(t)
}

func TestServerBadLinesKeepConnection(t *testing.T) {
	srv, tr := startServer(t)
	c := dialRaw(t, srv.Path())
	tests := []struct {
		name      string
		line      string
		wantError string
	}{
		{"not JSON", "hello", "not a JSON object"},
		{"JSON but not an object", `[1,2]`, "not a JSON object"},
		{"cut short", `{"task":"x"`, "not a JSON object"},
		{"progress of the wrong type", `{"progress":"x"}`, "progress must be a number"},
		{"progress over 100", `{"progress":150}`, "progress must be from 0 to 100"},
		{"negative tokens", `{"tokens":-5}`, "tokens must not be negative"},
		{"negative queue", `{"queueDepth":-1}`, "queueDepth must not be negative"},
		{"fractional active tasks", `{"activeTasks":1.5}`, "activeTasks must be a whole number"},
		{"idle not a bool", `{"idle":"yes"}`, "idle must be true or false"},
		{"bad quietFor", `{"quietFor":"soon"}`, "quietFor must be a duration"},
		{"quietFor a number", `{"quietFor":5}`, `quietFor must be a duration string such as "20m", got 5`},
		{"empty line", "", "empty line"},
		{"blank line", " \t\r", "empty line"},
		{"task not a string", `{"task":42}`, "task must be a string"},
		{"100 KiB line", `{"task":"` + strings.Repeat("a", 100<<10) + `"}`, "line is longer than 65536 bytes"},
	}
	tr.Apply(report(t, `{"task":"before","progress":10}`))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tr.Snapshot()
			got := c.send(t, tt.line)
			if got.OK || !strings.Contains(got.Error, tt.wantError) {
				t.Errorf("reply %+v, want ok:false with an error containing %q", got, tt.wantError)
			}
			if after := tr.Snapshot(); after.Reports != before.Reports || after.Task != "before" || *after.Progress != 10 {
				t.Errorf("a refused line changed the state: %+v", after)
			}
			// The same connection still works.
			if got := c.send(t, `{}`); !got.OK {
				t.Errorf("valid line after %s: %+v, want ok:true", tt.name, got)
			}
		})
	}
}

func TestServerLineLengthLimit(t *testing.T) {
	// A line of n bytes, newline included.
	line := func(n int) string {
		pad := n - len(`{"task":""}`+"\n")
		return `{"task":"` + strings.Repeat("a", pad) + `"}` + "\n"
	}
	srv, tr := startServer(t)
	c := dialRaw(t, srv.Path())

	c.write(t, line(sockline.MaxLineSize))
	if got := c.reply(t); !got.OK {
		t.Errorf("line of exactly %d bytes: %+v, want ok:true", sockline.MaxLineSize, got)
	}
	c.write(t, line(sockline.MaxLineSize+1))
	if got := c.reply(t); got.OK || got.Error != "line is longer than 65536 bytes" {
		t.Errorf("line of %d bytes: %+v, want the line-too-long error", sockline.MaxLineSize+1, got)
	}
	// Several times the buffer, then a valid line right behind it in the
	// same write: the long one is skipped to its end, the next is served.
	c.write(t, line(5*sockline.MaxLineSize)+`{"task":"after"}`+"\n")
	if got := c.reply(t); got.OK {
		t.Errorf("line of %d bytes: %+v, want ok:false", 5*sockline.MaxLineSize, got)
	}
	if got := c.reply(t); !got.OK {
		t.Errorf("line after a long one: %+v, want ok:true", got)
	}
	if got := tr.Snapshot(); got.Reports != 2 || got.Task != "after" {
		t.Errorf("Reports %d, Task %q; want 2, \"after\"", got.Reports, got.Task)
	}
}

// TestServerBlankLinesAnswered: every line gets its reply, a blank one
// too (the contract: beatwrap answers each line), so a client that waits for
// the reply to each line it writes never waits for one that does not come.
func TestServerBlankLinesAnswered(t *testing.T) {
	srv, tr := startServer(t)
	c := dialRaw(t, srv.Path())
	c.write(t, "\n  \n\r\n"+`{"progress":"x"}`+"\n\n"+`{}`+"\r\n")
	for i, want := range []string{"empty line", "empty line", "empty line", "progress must be a number", "empty line", ""} {
		got := c.reply(t)
		if got.OK != (want == "") || !strings.Contains(got.Error, want) {
			t.Errorf("reply %d %+v, want ok:%v error %q", i, got, want == "", want)
		}
	}
	if got := tr.Snapshot().Reports; got != 1 {
		t.Errorf("Reports = %d, want 1: a blank line is not a sign of progress", got)
	}
}

func TestServerLastLineWithoutNewline(t *testing.T) {
	srv, tr := startServer(t)
	c := dialRaw(t, srv.Path())
	c.write(t, `{"task":"last"}`)
	if err := c.Conn.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := c.reply(t); !got.OK {
		t.Errorf("reply %+v, want ok:true", got)
	}
	if got := tr.Snapshot().Task; got != "last" {
		t.Errorf("Task = %q, want \"last\"", got)
	}
}

func TestServerConcurrentClients(t *testing.T) {
	srv, tr := startServer(t)
	const clients, lines = 50, 20
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := Dial(ctx, srv.Path())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			task := fmt.Sprintf("client %d", i)
			tokens := int64(3)
			for j := range lines {
				p := float64(j * 5)
				reply, err := c.Send(ctx, sockline.Report{Task: &task, Progress: &p, Tokens: &tokens})
				if err != nil || !reply.OK {
					errs <- fmt.Errorf("client %d line %d: %+v, %v", i, j, reply, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := tr.Snapshot()
	if got.Reports != clients*lines {
		t.Errorf("Reports = %d, want %d", got.Reports, clients*lines)
	}
	if got.TokensLastHour != 3*clients*lines {
		t.Errorf("TokensLastHour = %d, want %d", got.TokensLastHour, 3*clients*lines)
	}
}

func TestSendOneShot(t *testing.T) {
	srv, tr := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 10 {
		task := fmt.Sprintf("step %d", i)
		reply, err := Send(ctx, srv.Path(), sockline.Report{Task: &task})
		if err != nil || !reply.OK {
			t.Fatalf("Send %d: %+v, %v", i, reply, err)
		}
	}
	p := 150.0
	reply, err := Send(ctx, srv.Path(), sockline.Report{Progress: &p})
	if err != nil || reply.OK || !strings.Contains(reply.Error, "progress") {
		t.Errorf("Send with progress 150: %+v, %v; want ok:false about progress and no error", reply, err)
	}
	if got := tr.Snapshot(); got.Reports != 10 || got.Task != "step 9" {
		t.Errorf("Reports %d, Task %q; want 10, \"step 9\"", got.Reports, got.Task)
	}
	if _, err := Send(ctx, filepath.Join(t.TempDir(), "none.sock"), sockline.Report{}); err == nil {
		t.Errorf("Send to a missing socket: no error")
	}
}

func TestSendHonoursContext(t *testing.T) {
	// A socket that accepts and never answers.
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Send(ctx, path, sockline.Report{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Send to a silent socket: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Send did not return within 5s of its context ending")
	}
}

func TestListenStaleSocketReplaced(t *testing.T) {
	path := socketPath(t)
	// What a crashed run leaves: a socket file nobody listens on.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	srv, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	serve(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if reply, err := Send(ctx, path, sockline.Report{}); err != nil || !reply.OK {
		t.Errorf("Send to the new socket: %+v, %v", reply, err)
	}
}

func TestListenLiveSocketRefused(t *testing.T) {
	first, tr := startServer(t)
	_, err := Listen(first.Path())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), first.Path()) {
		t.Fatalf("Listen on a live socket: %v, want ErrInUse naming %s", err, first.Path())
	}
	// The live one keeps working.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if reply, err := Send(ctx, first.Path(), sockline.Report{}); err != nil || !reply.OK {
		t.Errorf("Send to the first server: %+v, %v", reply, err)
	}
	// One report from Send; Listen's probe is a connection without a line.
	if got := tr.Snapshot().Reports; got != 1 {
		t.Errorf("Reports = %d, want 1", got)
	}
}

func TestListenNeverRemovesOtherFiles(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to a socket", func(t *testing.T, path string) {
			target := filepath.Join(filepath.Dir(path), "target.sock")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: target, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			ln.SetUnlinkOnClose(false)
			ln.Close()
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := socketPath(t)
			tt.make(t, path)
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := Listen(path)
			if err == nil {
				srv.Close()
				t.Fatalf("Listen over a %s: no error", tt.name)
			}
			if !errors.Is(err, ErrNotSocket) || !strings.Contains(err.Error(), path) {
				t.Errorf("Listen over a %s: %v, want ErrNotSocket naming %s", tt.name, err, path)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) || after.Mode() != before.Mode() {
				t.Errorf("%s at the socket path changed: %v", tt.name, err)
			}
		})
	}
	t.Run("regular file keeps its content", func(t *testing.T) {
		path := socketPath(t)
		if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(path); err == nil {
			t.Fatal("no error")
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != "precious" {
			t.Errorf("content now %q, %v; want \"precious\"", got, err)
		}
	})
}

func TestListenModes(t *testing.T) {
	t.Run("missing folders created 0700, socket 0600", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "run", "beatwrap")
		path := filepath.Join(dir, "a.sock")
		srv, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		checkMode(t, dir, 0o700)
		checkMode(t, path, 0o600)
	})
	t.Run("existing folder left as it is", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "shared")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		srv, err := Listen(filepath.Join(dir, "a.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		checkMode(t, dir, 0o755)
		checkMode(t, srv.Path(), 0o600)
	})
	t.Run("path too long for a unix socket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), strings.Repeat("x", 120)+".sock")
		if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "more than the 107") {
			t.Errorf("Listen(%d bytes): %v, want an error about the length", len(path), err)
		}
	})
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %o, want %o", path, got, want)
	}
}

func TestCloseStopsServeAndRemovesSocket(t *testing.T) {
	srv, err := Listen(socketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(TrackerConfig{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), Handler{Report: tr.Apply}) }()
	c := dialRaw(t, srv.Path())
	if got := c.send(t, `{}`); !got.OK {
		t.Fatalf("reply %+v", got)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of Close")
	}
	// Serve has returned, so every connection goroutine has too and the
	// open connection was closed from the server's side.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("read on a connection after Close: %v, want EOF", err)
	}
	if _, err := os.Lstat(srv.Path()); !os.IsNotExist(err) {
		t.Errorf("socket file after Close: %v, want it gone", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseLeavesAReplacedFile(t *testing.T) {
	srv, err := Listen(socketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	// Someone removed our socket and put their own file there.
	os.Remove(srv.Path())
	if err := os.WriteFile(srv.Path(), []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got, err := os.ReadFile(srv.Path()); err != nil || string(got) != "theirs" {
		t.Errorf("file after Close: %q, %v; want it left alone", got, err)
	}
}

func TestServerConnectionLimit(t *testing.T) {
	srv, err := Listen(socketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	srv.maxConns = 2
	serve(t, srv)

	first, second := dialRaw(t, srv.Path()), dialRaw(t, srv.Path())
	for _, c := range []*rawConn{first, second} {
		if got := c.send(t, `{}`); !got.OK {
			t.Fatalf("reply %+v", got)
		}
	}
	third := dialRaw(t, srv.Path())
	if got := third.reply(t); got.OK || !strings.Contains(got.Error, "too many connections (2)") {
		t.Errorf("third connection: %+v, want the too-many-connections error", got)
	}
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := third.r.ReadByte(); err != io.EOF {
		t.Errorf("third connection after its reply: %v, want EOF", err)
	}

	// A closed connection frees its place, once the server has noticed.
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialRaw(t, srv.Path())
		if got := c.send(t, `{}`); got.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no place freed within 5s of closing a connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerSlowClientBlocksNobody(t *testing.T) {
	srv, err := Listen(socketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	srv.replyTimeout = 200 * time.Millisecond
	serve(t, srv)

	// A client that writes reports and never reads a reply: its replies
	// fill the socket buffer and the server's write to it blocks.
	slow := dialRaw(t, srv.Path())
	slowDone := make(chan error, 1)
	go func() {
		chunk := []byte(strings.Repeat(`{}`+"\n", 4096))
		for {
			slow.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := slow.Write(chunk); err != nil {
				slowDone <- err
				return
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 {
		if reply, err := c.Send(ctx, sockline.Report{}); err != nil || !reply.OK {
			t.Fatalf("Send %d while a client is stuck: %+v, %v", i, reply, err)
		}
	}
	select {
	case err := <-slowDone:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("slow client was not dropped: its write timed out")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client that never reads was not dropped within 10s")
	}
}

func TestDefaultSocketPath(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got, want := DefaultSocketPath("summariser-1"), "/run/user/1000/beatwrap/summariser-1.sock"; got != want {
		t.Errorf("with XDG_RUNTIME_DIR: %q, want %q", got, want)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got, want := DefaultSocketPath("summariser-1"), fmt.Sprintf("/tmp/beatwrap-%d/summariser-1.sock", os.Getuid()); got != want {
		t.Errorf("without XDG_RUNTIME_DIR: %q, want %q", got, want)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	path := filepath.Join(b.TempDir(), "b.sock")
	srv, err := Listen(path)
	if err != nil {
		b.Fatal(err)
	}
	tr := NewTracker(TrackerConfig{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), Handler{Report: tr.Apply}) }()
	defer func() {
		srv.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			b.Error("Serve did not return within 5s of Close")
		}
	}()
	ctx := context.Background()
	c, err := Dial(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r, err := sockline.ParseReport([]byte(`{"task":"summarise ticket 4312","progress":40,"activeTasks":1,"queueDepth":7,"tokens":1850}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if reply, err := c.Send(ctx, r); err != nil || !reply.OK {
			b.Fatalf("%+v, %v", reply, err)
		}
	}
}
