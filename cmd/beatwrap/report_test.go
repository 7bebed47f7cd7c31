package main

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// fakeSocket is a progress socket that answers every line with a fixed reply
// (none when reply is empty) and keeps the lines it read. A one-shot one
// closes each connection after its first reply, as a beatwrap that went away
// would.
type fakeSocket struct {
	path string

	mu    sync.Mutex
	lines []string
	conns []net.Conn
}

func newFakeSocket(t *testing.T, reply string, oneShot bool) *fakeSocket {
	t.Helper()
	f := &fakeSocket{path: filepath.Join(shortDir(t), "fake.sock")}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					f.mu.Lock()
					f.lines = append(f.lines, sc.Text())
					f.mu.Unlock()
					if reply != "" {
						c.Write([]byte(reply + "\n"))
					}
					if oneShot {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	return f
}

func (f *fakeSocket) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// TestReportExitCodes runs `beatwrap report` against a socket that accepts,
// one that rejects, one that never answers and none at all: 0 accepted, 1
// rejected or not delivered, 2 for a usage error, which a value outside what
// beatwrap accepts and a missing socket are.
func TestReportExitCodes(t *testing.T) {
	ok := newFakeSocket(t, `{"ok":true}`, false)
	rejecting := newFakeSocket(t, `{"ok":false,"error":"queueDepth must not be negative, got -1"}`, false)
	silent := newFakeSocket(t, "", false)
	nowhere := filepath.Join(shortDir(t), "nobody-listens.sock")
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantErr  string      // in stderr
		wantSent *fakeSocket // the socket that must have received the report
	}{
		{"accepted, socket from BEATWRAP_SOCKET", []string{"BEATWRAP_SOCKET=" + ok.path}, []string{"--task", "step 2", "--progress", "40", "--tokens", "12"}, 0, "", ok},
		{"--socket wins over the variable", []string{"BEATWRAP_SOCKET=" + nowhere}, []string{"--socket", ok.path, "--idle"}, 0, "", ok},
		{"rejected", []string{"BEATWRAP_SOCKET=" + rejecting.path}, []string{"--queue", "3"}, 1, "queueDepth must not be negative", rejecting},
		{"nobody listens", []string{"BEATWRAP_SOCKET=" + nowhere}, []string{"--task", "x"}, 1, nowhere, nil},
		{"no reply within --timeout", []string{"BEATWRAP_SOCKET=" + silent.path}, []string{"--task", "x", "--timeout", "300ms"}, 1, "deadline", silent},
		{"no socket", []string{"BEATWRAP_SOCKET"}, []string{"--task", "x"}, 2, "BEATWRAP_SOCKET", nil},
		{"progress 150", []string{"BEATWRAP_SOCKET=" + ok.path}, []string{"--progress", "150"}, 2, "--progress must be from 0 to 100, got 150", nil},
		{"negative tokens", []string{"BEATWRAP_SOCKET=" + ok.path}, []string{"--tokens", "-5"}, 2, "--tokens", nil},
		{"progress not a number", []string{"BEATWRAP_SOCKET=" + ok.path}, []string{"--progress", "half"}, 2, "--progress", nil},
		{"quiet-for not a duration", []string{"BEATWRAP_SOCKET=" + ok.path}, []string{"--quiet-for", "soon"}, 2, "--quiet-for", nil},
		{"an argument", []string{"BEATWRAP_SOCKET=" + ok.path}, []string{"working"}, 2, "working", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[*fakeSocket]int{ok: len(ok.got()), rejecting: len(rejecting.got()), silent: len(silent.got())}
			start := time.Now()
			r := startBeatwrap(t, tt.env, append([]string{"report"}, tt.args...)...)
			code := r.wait(10 * time.Second)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr: %s", code, tt.wantCode, r.stderr)
			}
			msg := strings.TrimSpace(r.stderr.String())
			if tt.wantErr == "" && msg != "" || !strings.Contains(msg, tt.wantErr) || strings.Contains(msg, "\n") {
				t.Errorf("stderr = %q, want one line with %q", msg, tt.wantErr)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("report took %v", d)
			}
			for f, n := range before {
				want := 0
				if f == tt.wantSent {
					want = 1
				}
				if got := len(f.got()) - n; got != want {
					t.Errorf("%s received %d lines, want %d", filepath.Base(f.path), got, want)
				}
			}
		})
	}
	lines := ok.got()
	if len(lines) == 0 {
		t.Fatal("the accepting socket received nothing")
	}
	r, err := sockline.ParseReport([]byte(lines[0]))
	if err != nil || r.Task == nil || *r.Task != "step 2" || r.Progress == nil || *r.Progress != 40 || r.Tokens == nil || *r.Tokens != 12 ||
		r.QueueDepth != nil || r.Idle != nil {
		t.Errorf("line sent = %s (%v), want task, progress and tokens and nothing else", lines[0], err)
	}
}
