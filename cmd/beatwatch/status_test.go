package main

import (
	"encoding/json"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

func TestStatus(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	w := startRedisWatcher(t, url, ns)
	// Intervals long enough that a loaded machine neither makes st-1 missing
	// nor lets st-2's hash (4 intervals after its stop) expire mid-test.
	startAgent(t, "--redis", url, "--namespace", ns, "--id", "st-1", "--interval", "500ms")
	stopper := startAgent(t, "--redis", url, "--namespace", ns, "--id", "st-2", "--interval", "2s")
	// Healthy from the beat each registration publishes (status starting),
	// then past its first sample.
	for _, id := range []string{"st-1", "st-2"} {
		w.waitAgent(id, 10*time.Second, "healthy, past its first sample", func(a monitor.Agent) bool {
			return a.State == monitor.Healthy && a.Status == wire.StatusHealthy
		})
	}
	stopper.signal(syscall.SIGTERM)
	stopper.wait(10 * time.Second)
	w.waitState("st-2", monitor.Stopped, 2*time.Second)

	sources := []struct {
		name string
		args []string
		env  []string
	}{
		{"watcher", []string{"--watcher", w.base}, nil},
		{"watcher from env", nil, []string{"BEATWATCH_WATCHER=" + w.base}},
		{"redis", []string{"--redis", url, "--namespace", ns}, nil},
	}
	for _, src := range sources {
		t.Run(src.name+" table", func(t *testing.T) {
			p := startProc(t, "cmd/beatwatch", src.env, append([]string{"status"}, src.args...)...)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
			}
			out := p.stdout.String()
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 4 {
				t.Fatalf("want a header, two agents and a total; got:\n%s", out)
			}
			for _, col := range []string{"AGENT", "STATE", "STATUS", "LAST BEAT", "TASK", "PROGRESS", "CPU %", "MEM MB"} {
				if !strings.Contains(lines[0], col) {
					t.Errorf("header %q lacks %s", lines[0], col)
				}
			}
			if f := strings.Fields(lines[1]); f[0] != "st-1" || f[1] != "healthy" || f[2] != "healthy" || !strings.Contains(lines[1], " ago") {
				t.Errorf("st-1 line = %q, want st-1 healthy healthy and the age of its last beat", lines[1])
			}
			if f := strings.Fields(lines[2]); f[0] != "st-2" || f[1] != "stopped" || f[2] != "stopped" {
				t.Errorf("st-2 line = %q, want st-2 stopped stopped", lines[2])
			}
			if want := "2 agents: 1 healthy, 0 stalled, 0 missing, 0 failed, 0 recovering, 1 stopped"; lines[3] != want {
				t.Errorf("total line = %q, want %q", lines[3], want)
			}
		})
		t.Run(src.name+" json", func(t *testing.T) {
			p := startProc(t, "cmd/beatwatch", src.env, append([]string{"status", "-o", "json"}, src.args...)...)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
			}
			var s dashboard.Summary
			if err := json.Unmarshal([]byte(p.stdout.String()), &s); err != nil {
				t.Fatalf("-o json is not the summary: %v\n%s", err, p.stdout)
			}
			if s.Total != 2 || s.Healthy != 1 || s.Stopped != 1 || len(s.Agents) != 2 ||
				s.Agents[0].AgentID != "st-1" || s.Agents[1].AgentID != "st-2" || s.Agents[0].PID == 0 {
				t.Errorf("summary = %+v", s)
			}
		})
		t.Run(src.name+" filtered and limited", func(t *testing.T) {
			p := startProc(t, "cmd/beatwatch", src.env, append([]string{"status", "--state", "stopped"}, src.args...)...)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
			}
			lines := strings.Split(strings.TrimSpace(p.stdout.String()), "\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[1], "st-2 ") || !strings.HasPrefix(lines[2], "2 agents: 1 healthy") {
				t.Errorf("--state stopped: want st-2 alone and the whole fleet's counts; got:\n%s", p.stdout)
			}
			p = startProc(t, "cmd/beatwatch", src.env, append([]string{"status", "--limit", "1", "-o", "json"}, src.args...)...)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
			}
			var s dashboard.Summary
			if err := json.Unmarshal([]byte(p.stdout.String()), &s); err != nil || s.Total != 2 || len(s.Agents) != 1 || s.Agents[0].AgentID != "st-1" {
				t.Errorf("--limit 1: want st-1 (healthy is worse than stopped) of 2; got %v\n%s", err, p.stdout)
			}
		})
	}
}

func TestStatusWithToken(t *testing.T) {
	w := startWatcher(t, "--token", "tk")
	for _, tt := range []struct {
		token string
		want  int
	}{{"tk", 0}, {"", 1}, {"nope", 1}} {
		p := startProc(t, "cmd/beatwatch", nil, "status", "--watcher", w.base, "--token", tt.token)
		if code := p.wait(10 * time.Second); code != tt.want {
			t.Errorf("status with token %q: exit code %d, want %d; stderr:\n%s", tt.token, code, tt.want, p.stderr)
		}
		if tt.want != 0 && !strings.Contains(p.stderr.String(), "401") {
			t.Errorf("status with token %q: stderr %q does not say 401", tt.token, p.stderr)
		}
	}
}

func TestBadFlagsExit2NamingTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"serve", "--check-interval", "1ms"}, nil, "--check-interval"},
		{[]string{"serve", "--check-interval", "often"}, nil, "--check-interval"},
		{[]string{"serve", "--missed-beats", "0"}, nil, "--missed-beats"},
		{[]string{"serve", "--default-interval", "50ms"}, nil, "--default-interval"},
		{[]string{"--redis", "http://127.0.0.1:6379"}, nil, "--redis"},
		{[]string{"--redis", "redis://s1:26379?master_name=m&max_redirects=2"}, nil, "--redis: redis url \"redis://s1:26379?master_name=m&max_redirects=2\" mixes forms"},
		{[]string{"--redis", "redis://n1:7000/1?addr=n2:7000"}, nil, "a Redis Cluster has only db 0"},
		{[]string{"--redis", "redis://127.0.0.1:6379", "--shards", "0"}, nil, "--shards must be 1 to 1024, got 0"},
		{[]string{"--shards", "4"}, nil, "--shards 4 needs --redis"},
		{[]string{"--redis", "redis://127.0.0.1:6379", "--shards", "4", "--advertise", "127.0.0.1:7070"}, nil, "--advertise"},
		{[]string{"status", "--redis", "redis://n1:7000?addr=n2:7000&db=3"}, nil, "--redis"},
		{[]string{"--redis", "rediss://127.0.0.1:1", "--redis-ca", "/dev/null"}, nil, `--redis-ca "/dev/null": no PEM certificate in it`},
		{[]string{"--redis", "rediss://127.0.0.1:1", "--redis-key", "/x/key.pem"}, nil, `--redis-cert and --redis-key go together, got only --redis-key "/x/key.pem"`},
		{[]string{"status", "--redis", "rediss://127.0.0.1:1", "--redis-cert", "/x/c.pem", "--redis-key", "/x/k.pem"}, nil, `--redis-cert "/x/c.pem", --redis-key "/x/k.pem": open /x/c.pem`},
		{[]string{"status", "--redis", "redis://127.0.0.1:1", "--redis-cert", "/x/c.pem", "--redis-key", "/x/k.pem"}, nil, `--redis-cert "/x/c.pem": tls files need a rediss:// URL, got redis://127.0.0.1:1`},
		{[]string{"serve", "--recover", "kubernetes"}, nil, "--recover"},
		{[]string{"serve", "--alert-format", "email"}, nil, "--alert-format"},
		{[]string{"--listen", "bogus"}, nil, "--listen"},
		{[]string{"--recover-wait", "-5s"}, nil, "--recover-wait"},
		{[]string{"--alert-repeat", "-1s"}, nil, "--alert-repeat"},
		{[]string{"--brake-min-agents", "0"}, nil, "--brake-min-agents"},
		{[]string{"--brake-fraction", "1.5"}, nil, "--brake-fraction"},
		{[]string{"--brake-fraction", "NaN"}, nil, "--brake-fraction"},
		{[]string{"--listen", "127.0.0.1:99999"}, nil, `--listen must have a port from 0 to 65535, got "127.0.0.1:99999"`},
		{[]string{"--listen", "127.0.0.1:http"}, nil, "--listen"},
		{[]string{"--docker-host", "bogus://x"}, nil, `--docker-host: scheme must be unix, tcp or npipe, got "bogus://x"`},
		{[]string{"--docker-host", "tcp://"}, nil, "--docker-host"},
		{[]string{"--docker-host", "tcp://x:99999"}, nil, "--docker-host"},
		{[]string{"serve"}, []string{"DOCKER_HOST=bogus://x"}, "DOCKER_HOST"},
		{[]string{"status", "--watcher", "ftp://x"}, nil, `--watcher must be an http:// or https:// URL, got "ftp://x"`},
		{[]string{"--recover", "docker", "--alert-webhook", "ftp://x"}, nil, "--alert-webhook"},
		{[]string{"serve", "--log-level", "loud"}, nil, "--log-level"},
		{[]string{"serve", "--docker-host", "unix:///var/run/docker.sock", "--docker-host", "ssh://me@host"}, nil, "--docker-host"},
		{[]string{"serve", "--docker-host", "/var/run/docker.sock"}, nil, "--docker-host"},
		{[]string{"serve"}, []string{"BEATWATCH_DOCKER_HOST=tcp://"}, "--docker-host"},
		{[]string{"serve", "--no-such-flag"}, nil, "--no-such-flag"},
		{[]string{"serve"}, []string{"BEATWATCH_CHECK_INTERVAL=fast"}, "BEATWATCH_CHECK_INTERVAL"},
		{[]string{"status", "-o", "yaml"}, nil, "-o"},
		{[]string{"status", "--redis", "redis://127.0.0.1:1", "--watcher", "http://127.0.0.1:1"}, nil, "--redis"},
		{[]string{"status", "--redis", "http://127.0.0.1:6379"}, nil, "--redis"},
		{[]string{"status", "--watcher", "::no-scheme"}, nil, "--watcher"},
		{[]string{"status", "--limit", "-1"}, nil, "--limit"},
		{[]string{"status", "--limit", "20000"}, nil, "--limit"},
		{[]string{"status", "--state", "dead"}, nil, "--state"},
		{[]string{"demo", "--listen", "bogus"}, nil, `--listen must be host:port, got "bogus"`},
		{[]string{"demo", "--listen", "127.0.0.1:99999"}, nil, `--listen must have a port from 0 to 65535, got "127.0.0.1:99999"`},
		{[]string{"demo"}, []string{"BEATWATCH_LISTEN=127.0.0.1:http"}, "--listen"},
		{[]string{"demo", "--beatwrap", "/nonexistent"}, nil, `--beatwrap "/nonexistent": `},
		{[]string{"demo", "--beatwrap", "/dev/null"}, nil, `--beatwrap "/dev/null": not an executable file`},
		{[]string{"demo", "--beatwrap", "/"}, nil, `--beatwrap "/": not an executable file`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append(tt.env, tt.args...), " "), func(t *testing.T) {
			args := tt.args
			if args[0] != "status" && !slices.Contains(args, "--listen") && !slices.ContainsFunc(tt.env, func(kv string) bool { return strings.HasPrefix(kv, "BEATWATCH_LISTEN=") }) {
				args = append(args, "--listen", "127.0.0.1:0")
			}
			p := startProc(t, "cmd/beatwatch", tt.env, args...)
			if code := p.wait(10 * time.Second); code != 2 {
				t.Fatalf("exit code = %d, want 2; stderr:\n%s", code, p.stderr)
			}
			msg := strings.TrimSpace(p.stderr.String())
			if !strings.Contains(msg, tt.want) {
				t.Errorf("stderr %q does not name %s", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("want a one-line message, nothing started; got:\n%s", msg)
			}
			if out := p.stdout.String(); out != "" {
				t.Errorf("want nothing started, nothing on stdout; got:\n%s", out)
			}
		})
	}
}
