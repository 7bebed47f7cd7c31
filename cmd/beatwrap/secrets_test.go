package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// environScript is an agent that does what a curious one would: it reads
// its parent's environment, /proc/$PPID/environ (the parent is beatwrap),
// and its own, into $OUT, then idles.
const environScript = `cat /proc/$PPID/environ > "$OUT.parent"; cat /proc/$PPID/cmdline > "$OUT.cmdline"; env > "$OUT.own"; touch "$OUT"; exec sleep 60`

// TestSecretsHiddenFromTheAgent runs the real beatwrap with its secrets
// given each way there is, and an agent that reads beatwrap's
// /proc/<pid>/environ and command line: the beats arrive (the secret was
// used), and the agent finds the secret nowhere.
func TestSecretsHiddenFromTheAgent(t *testing.T) {
	const redisPassword = "pw-secret-7c41"
	rd := testutil.StartRedisWith(t, "--requirepass", redisPassword)
	authed := fmt.Sprintf("redis://:%s@%s/0", redisPassword, rd.Addr())

	auth := make(chan string, 64)
	watcher := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case auth <- r.Header.Get("Authorization"):
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer watcher.Close()

	secretFile := func(t *testing.T, content string) string {
		p := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		secret string
		env    func(t *testing.T) []string
		args   func(t *testing.T) []string
		redis  bool
	}{
		{"BEATWRAP_TOKEN", "tok-secret-1d9e",
			func(*testing.T) []string { return []string{"BEATWRAP_TOKEN=tok-secret-1d9e"} },
			func(*testing.T) []string { return []string{"--watcher", watcher.URL} }, false},
		{"--token-file", "tok-secret-2f0a",
			func(*testing.T) []string { return nil },
			func(t *testing.T) []string {
				return []string{"--watcher", watcher.URL, "--token-file", secretFile(t, "tok-secret-2f0a")}
			}, false},
		{"BEATWRAP_REDIS with a password", redisPassword,
			func(*testing.T) []string { return []string{"BEATWRAP_REDIS=" + authed} },
			func(*testing.T) []string { return nil }, true},
		{"BEATWRAP_WATCHER with a password", "pw-watcher-5b2e",
			func(*testing.T) []string {
				return []string{"BEATWRAP_WATCHER=" + strings.Replace(watcher.URL, "http://", "http://agent:pw-watcher-5b2e@", 1)}
			},
			func(*testing.T) []string { return nil }, false},
		{"--redis-password-file", redisPassword,
			func(*testing.T) []string { return nil },
			func(t *testing.T) []string {
				return []string{"--redis", rd.URL(), "--redis-password-file", secretFile(t, redisPassword)}
			}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Beats of the subtest before may still be on their way.
			for len(auth) > 0 {
				<-auth
			}
			out := filepath.Join(t.TempDir(), "seen")
			id := "secrets-" + strconv.Itoa(i)
			var bs *beats
			args := append([]string{"--id", id, "--interval", "200ms", "--socket", filepath.Join(shortDir(t), "s.sock")}, tt.args(t)...)
			if tt.redis {
				bs = subscribe(t, authed)
				args = append(args, "--namespace", bs.ns)
			}
			env := append([]string{"OUT=" + out, "REDIS_URL", "BEATWRAP_REDIS", "BEATWRAP_TOKEN", "BEATWRAP_WATCHER"}, tt.env(t)...)
			startBeatwrap(t, env, append(args, "--", "sh", "-c", environScript)...)

			if tt.redis {
				bs.next(10*time.Second, func(b wire.Beat) bool { return b.AgentID == id })
			} else {
				select {
				case got := <-auth:
					want := "Bearer " + tt.secret
					if strings.HasPrefix(tt.name, "BEATWRAP_WATCHER") {
						want = "Basic " + base64.StdEncoding.EncodeToString([]byte("agent:"+tt.secret))
					}
					if got != want {
						t.Errorf("Authorization = %q, want %q", got, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no beat reached the watcher within 10s")
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, err := os.Stat(out); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the agent did not write what it saw within 10s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, f := range []string{".parent", ".cmdline", ".own"} {
				seen, err := os.ReadFile(out + f)
				if err != nil {
					t.Fatal(err)
				}
				if f == ".parent" && !bytes.Contains(seen, []byte("OUT="+out)) {
					t.Fatalf("the agent could not read beatwrap's environment at all (%d bytes): the test proves nothing", len(seen))
				}
				for _, entry := range strings.FieldsFunc(string(seen), func(r rune) bool { return r == 0 || r == '\n' }) {
					if strings.Contains(entry, tt.secret) {
						t.Errorf("the agent read the secret in beatwrap's %s: %q", strings.TrimPrefix(f, "."), entry)
					}
				}
			}
		})
	}
}

// TestWatcherPasswordNotLogged runs the real beatwrap with a --watcher URL
// that carries a password, against a watcher that takes the beats, one that
// refuses them, one that is not there and a URL that does not parse: no line
// beatwrap writes holds the password, and the lines that name the watcher
// show it masked.
func TestWatcherPasswordNotLogged(t *testing.T) {
	const password = "pw-watcher-5b2e"
	serve := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			fmt.Fprintln(w, `{"error":"not today"}`)
		}))
		t.Cleanup(srv.Close)
		return strings.Replace(srv.URL, "http://", "http://user:"+password+"@", 1)
	}
	tests := []struct {
		name     string
		watcher  string
		wantCode int
		wantLog  string // a line that names the watcher, masked
	}{
		{"accepting", serve(http.StatusAccepted), 0, "user:xxxxx@"},
		{"refusing", serve(http.StatusBadRequest), 0, "user:xxxxx@"},
		{"unreachable", "http://user:" + password + "@127.0.0.1:1", 0, "user:xxxxx@"},
		{"bad port", "http://user:" + password + "@127.0.0.1:port", 2, "--watcher"},
		{"bad userinfo", "http://user:" + password + " x@127.0.0.1:1", 2, "--watcher"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startBeatwrap(t, []string{"BEATWRAP_TOKEN", "BEATWRAP_WATCHER", "BEATWRAP_REDIS", "REDIS_URL"},
				"--watcher", tt.watcher, "--interval", "100ms", "--log-format", "json", "--log-level", "debug",
				"--socket", filepath.Join(shortDir(t), "s.sock"), "--", "sh", "-c", "echo work; sleep 0.5; exit 3")
			code := r.wait(10 * time.Second)
			if tt.wantCode == 2 && code != 2 {
				t.Fatalf("exit code = %d, want 2; stderr:\n%s", code, r.stderr)
			}
			if tt.wantCode == 0 && code != 3 {
				t.Fatalf("exit code = %d, want the child's 3; stderr:\n%s", code, r.stderr)
			}
			out := r.stdout.String() + r.stderr.String()
			if !strings.Contains(out, tt.wantLog) {
				t.Errorf("no line shows %q: the test does not see the lines it means to check:\n%s", tt.wantLog, out)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, password) {
					t.Errorf("a line shows the watcher's password: %s", line)
				}
			}
		})
	}
}
