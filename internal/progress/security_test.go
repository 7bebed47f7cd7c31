package progress

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the user the tests run a stranger as.
const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to act as another user")
	}
}

// peerReport connects to path from a process of its own (perl: the test
// binary sits in a folder only we may read), as uid when uid >= 0, sends line
// and returns the reply line, or what went wrong.
func peerReport(t *testing.T, path, line string, uid int) string {
	t.Helper()
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("needs perl, to connect from another process")
	}
	const script = `use IO::Socket::UNIX;
$SIG{PIPE} = 'IGNORE';
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or die "connect: $!\n";
print $s "$ARGV[1]\n";
my $r = <$s>;
print defined $r ? $r : "EOF\n";`
	cmd := exec.Command(perl, "-e", script, path, line)
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	done := make(chan struct{})
	var out []byte
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("peer did not get a reply within 10s")
	}
	return strings.TrimSpace(string(out))
}

func TestListenRefusesUnsafeFolders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int // -1: ours
		want  string
	}{
		{"ours 0700", 0o700, -1, ""},
		{"ours 0755", 0o755, -1, ""},
		{"ours, others may write", 0o777, -1, "lets other users write"},
		{"ours, the group may write", 0o770, -1, "lets other users write"},
		{"sticky, others may write", 0o777 | os.ModeSticky, -1, ""},
		{"another user's, 0700", 0o700, 1001, "belongs to uid 1001"},
		{"another user's, mkdir -m777", 0o777, 1001, "belongs to uid 1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 {
				needRoot(t)
			}
			dir := filepath.Join(t.TempDir(), "beatwrap-1000")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.owner >= 0 {
				if err := os.Chown(dir, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			srv, err := Listen(filepath.Join(dir, "a.sock"))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Listen: %v, want it served", err)
				}
				srv.Close()
				return
			}
			if err == nil {
				srv.Close()
				t.Fatalf("Listen in a folder %s: served, want %v", tc.name, ErrUnsafeFolder)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "unsafe folder") {
				t.Errorf("Listen: %v, want it to say %q", err, tc.want)
			}
			if _, serr := os.Lstat(filepath.Join(dir, "a.sock")); serr == nil {
				t.Errorf("a socket was made in the refused folder")
			}
		})
	}
	t.Run("a folder above is writable by others", func(t *testing.T) {
		top := filepath.Join(t.TempDir(), "shared")
		if err := os.Mkdir(top, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(top, 0o777); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(top, "run", "a.sock")
		if srv, err := Listen(path); err == nil {
			srv.Close()
			t.Fatalf("Listen under a world-writable folder: served, want %v", ErrUnsafeFolder)
		} else if !strings.Contains(err.Error(), top+": unsafe folder") {
			t.Errorf("Listen: %v, want it to name %s", err, top)
		}
	})
}

func TestServerRefusesOtherUsers(t *testing.T) {
	needRoot(t)
	// A folder and socket any user reaches, as after a mode loosened by
	// mistake: the peer check is the wall that is left.
	dir, err := os.MkdirTemp("", "peercred")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(filepath.Join(dir, "p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	tr := serve(t, srv)
	if err := os.Chmod(srv.Path(), 0o666); err != nil {
		t.Fatal(err)
	}

	got := peerReport(t, srv.Path(), `{"task":"from a stranger"}`, nobody)
	if !strings.Contains(got, `"ok":false`) || !strings.Contains(got, "uid 65534 are not accepted") {
		t.Errorf("reply to uid %d: %s, want ok:false naming the uid", nobody, got)
	}
	if task := tr.Snapshot().Task; task != "" {
		t.Errorf("task after the stranger's report: %q, want none", task)
	}
	// Root, and our own user, are still served.
	if got := peerReport(t, srv.Path(), `{"task":"from root"}`, -1); got != `{"ok":true}` {
		t.Errorf("reply to root: %s, want ok:true", got)
	}
}

func TestServerIdleConnectionsLockOutNobody(t *testing.T) {
	t.Run("one process holding every place", func(t *testing.T) {
		srv, err := Listen(socketPath(t))
		if err != nil {
			t.Fatal(err)
		}
		srv.evictAfter = time.Hour // only the share per process helps here
		tr := serve(t, srv)
		for range MaxConns {
			dialRaw(t, srv.Path())
		}
		if got := peerReport(t, srv.Path(), `{"task":"still heard"}`, -1); got != `{"ok":true}` {
			t.Errorf("report from another process: %s, want ok:true", got)
		}
		if task := tr.Snapshot().Task; task != "still heard" {
			t.Errorf("task = %q, want the report's", task)
		}
		// The server accepts in order: the report's connection came after
		// all of ours, so every one of them has been let in or refused.
		srv.mu.Lock()
		held := len(srv.conns)
		srv.mu.Unlock()
		if held > MaxConnsPerPeer {
			t.Errorf("%d connections held after one process opened %d, want at most %d", held, MaxConns, MaxConnsPerPeer)
		}
	})
	t.Run("silent connections make room", func(t *testing.T) {
		srv, err := Listen(socketPath(t))
		if err != nil {
			t.Fatal(err)
		}
		srv.maxPerPeer = MaxConns
		srv.evictAfter = 50 * time.Millisecond
		serve(t, srv)
		silent := make([]*rawConn, MaxConns)
		for i := range silent {
			silent[i] = dialRaw(t, srv.Path())
		}
		// Every place is taken once the server has accepted them all; the
		// first must have been silent for evictAfter before it makes room.
		time.Sleep(100 * time.Millisecond) // the eviction rule's minimum age, not an assertion
		c := dialRaw(t, srv.Path())
		if got := c.send(t, `{"task":"x"}`); !got.OK {
			t.Errorf("report with %d silent connections open: %+v, want ok", MaxConns, got)
		}
	})
}
