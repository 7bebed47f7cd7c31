package deploy_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// testVersion is linked into the binaries the tests build, so that the
// image's `version` output proves which binaries it holds.
const testVersion = "deploy-test"

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveTestContainers()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built holds the binaries buildBinaries made, once per test process.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// buildBinaries builds beatwrap and beatwatch the way `make build` does
// (static, stripped, the version linked in) and returns their folder. It
// leaves out -trimpath: that only shortens the paths in the binaries, and
// without it the build shares the compile cache of every other test.
func buildBinaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "beatwrap-deploy-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build",
			"-ldflags", "-s -w -X github.com/beatwrap/beatwrap/internal/version.Version="+testVersion,
			"-o", dir+"/", "./cmd/beatwrap", "./cmd/beatwatch")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// run runs a command with a bound on its time and returns its trimmed
// combined output, failing the test on error.
func run(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := try(timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// try runs a command with a bound on its time and returns its trimmed
// combined output and error.
func try(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

// TestBinariesAreStatic checks what the scratch image relies on: no
// dynamic loader, no shared libraries.
func TestBinariesAreStatic(t *testing.T) {
	dir := buildBinaries(t)
	for _, name := range []string{"beatwrap", "beatwatch"} {
		t.Run(name, func(t *testing.T) {
			f, err := elf.Open(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s has a program interpreter: not static", name)
				}
			}
			libs, err := f.ImportedLibraries()
			if err != nil {
				t.Fatal(err)
			}
			if len(libs) > 0 {
				t.Errorf("%s needs shared libraries %v", name, libs)
			}
		})
	}
}

// TestImage builds deploy/Dockerfile from the binaries, the way a user
// does after `make build`, and runs what it holds.
func TestImage(t *testing.T) {
	testutil.RequireDocker(t)
	dir := buildBinaries(t)
	ctxDir := t.TempDir()
	copyFile(t, filepath.Join(dir, "beatwrap"), filepath.Join(ctxDir, "bin", "beatwrap"), 0o755)
	copyFile(t, filepath.Join(dir, "beatwatch"), filepath.Join(ctxDir, "bin", "beatwatch"), 0o755)
	copyFile(t, "Dockerfile", filepath.Join(ctxDir, "deploy", "Dockerfile"), 0o644)
	image := "beatwrap-deploy-test/beatwrap:" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { _, _ = try(time.Minute, "docker", "rmi", "-f", image) })
	run(t, 2*time.Minute, "docker", "build", "-q", "--label", testutil.TestLabel(),
		"-f", filepath.Join(ctxDir, "deploy", "Dockerfile"), "-t", image, ctxDir)

	t.Run("version", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want string
		}{
			{"default entrypoint is beatwatch", []string{image, "version"}, "beatwatch " + testVersion + " "},
			{"beatwrap", []string{"--entrypoint", "/beatwrap", image, "version"}, "beatwrap " + testVersion + " "},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				args := append([]string{"run", "--rm", "--network", "host", "--label", testutil.TestLabel()}, tt.args...)
				got := run(t, time.Minute, "docker", args...)
				if !strings.HasPrefix(got, tt.want) {
					t.Errorf("docker run ... version = %q, want it to start with %q", got, tt.want)
				}
			})
		}
	})

	t.Run("config", func(t *testing.T) {
		var got struct {
			User       string
			Entrypoint []string
		}
		out := run(t, time.Minute, "docker", "image", "inspect", "-f", "{{json .Config}}", image)
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("image config %q: %v", out, err)
		}
		if want := "65532:65532"; got.User != want {
			t.Errorf("User = %q, want %q", got.User, want)
		}
		if want := []string{"/beatwatch"}; !slices.Equal(got.Entrypoint, want) {
			t.Errorf("Entrypoint = %q, want %q", got.Entrypoint, want)
		}
	})

	t.Run("size", func(t *testing.T) {
		var bins int64
		for _, name := range []string{"beatwrap", "beatwatch"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			bins += fi.Size()
		}
		got, err := strconv.ParseInt(run(t, time.Minute, "docker", "image", "inspect", "-f", "{{.Size}}", image), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		// The image is the two binaries and nothing else: a few KiB of
		// metadata at most.
		if want := bins + 64<<10; got > want {
			t.Errorf("image is %d bytes, binaries %d: want at most %d", got, bins, want)
		}
		t.Logf("image %.1f MB uncompressed, %.1f MB gzipped (binaries %.1f MB)",
			float64(got)/1e6, float64(gzippedSize(t, image))/1e6, float64(bins)/1e6)
	})

	t.Run("example agent image", func(t *testing.T) { testAgentImage(t, image) })
	t.Run("beats from the image", func(t *testing.T) { testBeats(t, image) })
}

// gzippedSize is roughly what a registry stores and a node pulls.
func gzippedSize(t *testing.T, image string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "save", image)
	var n countWriter
	zw := gzip.NewWriter(&n)
	cmd.Stdout = zw
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker save: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// testAgentImage builds deploy/example-agent/Dockerfile with the image under
// test as both the beatwrap image and, as python images cannot be pulled
// here, the agent's base; it then runs the image's entrypoint with a command
// the base has.
func testAgentImage(t *testing.T, image string) {
	ctxDir := t.TempDir()
	copyFile(t, filepath.Join("example-agent", "Dockerfile"), filepath.Join(ctxDir, "deploy", "example-agent", "Dockerfile"), 0o644)
	for _, name := range []string{"agent.py", "beatwrap_report.py"} {
		copyFile(t, filepath.Join("..", "examples", "python", name), filepath.Join(ctxDir, "examples", "python", name), 0o644)
	}
	agentImage := "beatwrap-deploy-test/example-agent:" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { _, _ = try(time.Minute, "docker", "rmi", "-f", agentImage) })
	run(t, 2*time.Minute, "docker", "build", "-q", "--label", testutil.TestLabel(),
		"--build-arg", "WRAPPER_IMAGE="+image, "--build-arg", "AGENT_BASE="+image,
		"-f", filepath.Join(ctxDir, "deploy", "example-agent", "Dockerfile"), "-t", agentImage, ctxDir)

	// ENTRYPOINT beatwrap --grace 10s -- plus this command: beatwrap runs
	// (standalone, as user 65534) and its child prints the version. The base
	// has no /tmp for the progress socket; python images do.
	got := run(t, time.Minute, "docker", "run", "--rm", "--network", "host", "--tmpfs", "/tmp",
		"--label", testutil.TestLabel(), agentImage, "/usr/local/bin/beatwrap", "version")
	if want := "beatwrap " + testVersion + " "; !strings.Contains(got, want) {
		t.Errorf("agent image output %q, want it to contain %q", got, want)
	}

	cid := run(t, time.Minute, "docker", "create", "--label", testutil.TestLabel(), agentImage)
	t.Cleanup(func() { _, _ = try(time.Minute, "docker", "rm", "-f", cid) })
	for _, name := range []string{"agent.py", "beatwrap_report.py"} {
		run(t, time.Minute, "docker", "cp", cid+":/opt/agent/"+name, t.TempDir())
	}
}

// agentView is the part of beatwatch's agent JSON these tests read.
type agentView struct {
	AgentID     string `json:"agentId"`
	State       string `json:"state"`
	ContainerID string `json:"containerId"`
}

// testBeats runs the image as both parts on host networking: beatwatch
// watching a Redis, and beatwrap (from the same image) running a process
// and beating for it. The agent must show up healthy with its container
// found, and `docker stop` must end as a graceful stop.
func testBeats(t *testing.T, image string) {
	redisURL := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	watcher := run(t, time.Minute, "docker", "run", "-d", "--network", "host", "--label", testutil.TestLabel(), image,
		"serve", "--redis", redisURL, "--namespace", ns, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--recover", "none", "--check-interval", "50ms")
	t.Cleanup(func() { _, _ = try(time.Minute, "docker", "rm", "-f", watcher) })
	eventually(t, 20*time.Second, "beatwatch in the image answers /healthz", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	const id = "deploy-check"
	agent := run(t, time.Minute, "docker", "run", "-d", "--network", "host", "--tmpfs", "/tmp",
		"--label", testutil.TestLabel(), "--entrypoint", "/beatwrap", image,
		"--redis", redisURL, "--namespace", ns, "--id", id, "--interval", "200ms", "--grace", "2s",
		"--", "/beatwatch", "serve", "--listen", "127.0.0.1:0", "--recover", "none")
	t.Cleanup(func() { _, _ = try(time.Minute, "docker", "rm", "-f", agent) })

	var got agentView
	eventually(t, 20*time.Second, "agent "+id+" healthy", func() bool {
		got = getAgent(base, id)
		return got.State == "healthy"
	})
	if got.ContainerID != agent {
		t.Errorf("containerId = %q, want the agent's container %q", got.ContainerID, agent)
	}

	start := time.Now()
	run(t, time.Minute, "docker", "stop", "-t", "10", agent)
	stopTook := time.Since(start)
	eventually(t, 10*time.Second, "agent "+id+" stopped", func() bool {
		got = getAgent(base, id)
		return got.State == "stopped"
	})
	if code := run(t, time.Minute, "docker", "inspect", "-f", "{{.State.ExitCode}}", agent); code != "0" {
		t.Errorf("beatwrap exit code after docker stop = %s, want 0", code)
	}
	t.Logf("docker stop took %v (beatwrap's grace 2s, the engine's 10s)", stopTook.Round(time.Millisecond))
}

func getAgent(base, id string) agentView {
	var a agentView
	resp, err := http.Get(base + "/health/agents/" + id)
	if err != nil {
		return a
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&a)
	return a
}

// eventually polls cond every 50ms until it holds, failing the test with
// what after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("not within %v: %s", timeout, what)
		case <-tick.C:
		}
	}
}

// yamlDocs parses a YAML file into JSON values with PyYAML, the one YAML
// parser on hand (go.mod has none, on purpose). It skips the test when
// python3 or PyYAML is missing.
func yamlDocs(t *testing.T, data []byte) []json.RawMessage {
	t.Helper()
	const script = `import json, sys, yaml
print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))`
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found: YAML structure not checked")
	}
	if out, err := try(30*time.Second, "python3", "-c", "import yaml"); err != nil {
		t.Skipf("PyYAML not available (%s): YAML structure not checked", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-c", script)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("parse YAML: %v\n%s", err, stderr.String())
	}
	var docs []json.RawMessage
	if err := json.Unmarshal(out, &docs); err != nil {
		t.Fatal(err)
	}
	return docs
}

// graceOf returns the --grace value in a beatwrap command line.
func graceOf(t *testing.T, args []string) time.Duration {
	t.Helper()
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--grace="); ok {
			return mustDuration(t, v)
		}
		if a == "--grace" && i+1 < len(args) {
			return mustDuration(t, args[i+1])
		}
	}
	return 10 * time.Second // beatwrap's default
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

// TestCompose validates compose.yaml with docker-compose and checks what the
// file promises: the socket, the loopback port, the labels, and a stop grace
// longer than beatwrap's.
func TestCompose(t *testing.T) {
	tool, args := "docker-compose", []string{"-f", "compose.yaml", "config"}
	if _, err := exec.LookPath(tool); err != nil {
		// The compose plugin of newer Docker CLIs reads the same file.
		if _, err := try(30*time.Second, "docker", "compose", "version"); err != nil {
			t.Skip("neither docker-compose nor docker compose found: compose.yaml not validated")
		}
		tool, args = "docker", append([]string{"compose"}, args...)
	}
	run(t, time.Minute, tool, append(args, "-q")...)
	normalized := run(t, time.Minute, tool, args...)

	docs := yamlDocs(t, []byte(normalized))
	if len(docs) != 1 {
		t.Fatalf("docker-compose config gave %d documents, want 1", len(docs))
	}
	var cfg struct {
		Services map[string]struct {
			Image           string            `json:"image"`
			Command         []string          `json:"command"`
			Entrypoint      []string          `json:"entrypoint"`
			Labels          map[string]string `json:"labels"`
			Volumes         []any             `json:"volumes"`
			Ports           []any             `json:"ports"`
			StopGracePeriod string            `json:"stop_grace_period"`
			Restart         string            `json:"restart"`
			Healthcheck     struct {
				Test []string `json:"test"`
			} `json:"healthcheck"`
		} `json:"services"`
	}
	if err := json.Unmarshal(docs[0], &cfg); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"redis", "beatwatch", "example-agent"} {
		if _, ok := cfg.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
	bw := cfg.Services["beatwatch"]
	if got := fmt.Sprint(bw.Volumes); !strings.Contains(got, "/var/run/docker.sock:/var/run/docker.sock") || strings.Contains(got, ":ro") {
		t.Errorf("beatwatch volumes = %s, want the Docker socket mounted read-write", got)
	}
	if got := fmt.Sprint(bw.Ports); !strings.Contains(got, "127.0.0.1:7070:7070") {
		t.Errorf("beatwatch ports = %s, want 127.0.0.1:7070:7070", got)
	}
	if got := strings.Join(bw.Command, " "); !strings.Contains(got, "--listen 0.0.0.0:7070") || !strings.Contains(got, "--redis redis://redis:6379") {
		t.Errorf("beatwatch command = %q, want --redis redis://redis:6379... and --listen 0.0.0.0:7070", got)
	}

	ag := cfg.Services["example-agent"]
	for k, want := range map[string]string{"beatwatch.recover": "true", "beatwatch.agent": "example-1"} {
		if got := ag.Labels[k]; got != want {
			t.Errorf("example-agent label %s = %q, want %q", k, got, want)
		}
	}
	if len(ag.Entrypoint) == 0 || filepath.Base(ag.Entrypoint[0]) != "beatwrap" || !slices.Contains(ag.Entrypoint, "--") {
		t.Errorf("example-agent entrypoint = %q, want beatwrap [flags] --", ag.Entrypoint)
	}
	// beatwatch leaves an exited container under these policies alone,
	// taking it for an operator's docker stop.
	if ag.Restart == "always" || ag.Restart == "unless-stopped" {
		t.Errorf("example-agent restart: %s, want none: beatwatch would never recover it", ag.Restart)
	}
	// The HEALTHCHECK form: exec, no shell, beatwrap asking itself.
	if got := ag.Healthcheck.Test; len(got) != 3 || got[0] != "CMD" || filepath.Base(got[1]) != "beatwrap" || got[2] != "health" {
		t.Errorf("example-agent healthcheck test = %q, want [CMD .../beatwrap health]", got)
	}
	if ag.StopGracePeriod == "" {
		t.Fatal("example-agent has no stop_grace_period")
	}
	grace, stop := graceOf(t, ag.Entrypoint), mustDuration(t, ag.StopGracePeriod)
	if stop <= grace {
		t.Errorf("example-agent stop_grace_period %v, want more than beatwrap's --grace %v", stop, grace)
	}
}

// TestSystemd verifies the units with systemd-analyze, the binaries'
// paths pointed at the ones just built (verify checks that ExecStart is
// executable), and checks the stop sequence in beatwrap@.service.
func TestSystemd(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not found: units not verified")
	}
	bins := buildBinaries(t)
	dir := t.TempDir()
	units := []string{"beatwatch.service", "beatwrap@.service"}
	var paths []string
	for _, u := range units {
		data, err := os.ReadFile(filepath.Join("systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte("/usr/local/bin/"), []byte(bins+"/"))
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}

	t.Run("verify", func(t *testing.T) {
		// Warnings (an unknown key, a bad value) still exit 0: any output
		// is a finding.
		out, err := try(time.Minute, "systemd-analyze", append([]string{"verify", "--man=no"}, paths...)...)
		if err != nil || out != "" {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("exposure", func(t *testing.T) {
		out, err := try(time.Minute, "systemd-analyze", "security", "--offline=true", paths[0])
		if err != nil {
			t.Skipf("systemd-analyze security --offline: %v: %s", err, lastLine(out))
		}
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no exposure level in:\n%s", out)
		}
		got, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("beatwatch.service: %s", lastLine(out))
		// 0 is locked down, 10 is unprotected; systemd calls < 2 "OK".
		if got >= 2 {
			t.Errorf("beatwatch.service exposure %.1f, want below 2", got)
		}
	})

	t.Run("settings", func(t *testing.T) {
		tests := []struct {
			unit, key, want string
		}{
			{"beatwatch.service", "Restart", "always"},
			{"beatwatch.service", "EnvironmentFile", "-/etc/default/beatwatch"},
			{"beatwatch.service", "ExecStart", "/usr/local/bin/beatwatch serve --redis ${REDIS_URL} --log-format json"},
			{"beatwrap@.service", "KillMode", "mixed"},
		}
		for _, tt := range tests {
			t.Run(tt.unit+" "+tt.key, func(t *testing.T) {
				if got := unitValues(t, tt.unit)[tt.key]; !slices.Contains(got, tt.want) {
					t.Errorf("%s = %q, want %q among them", tt.key, got, tt.want)
				}
			})
		}
	})

	t.Run("beatwrap@ stops within TimeoutStopSec", func(t *testing.T) {
		v := unitValues(t, "beatwrap@.service")
		if len(v["ExecStart"]) != 1 || len(v["TimeoutStopSec"]) != 1 {
			t.Fatalf("want one ExecStart and one TimeoutStopSec, got %q and %q", v["ExecStart"], v["TimeoutStopSec"])
		}
		args := strings.Fields(v["ExecStart"][0])
		if !strings.HasSuffix(args[0], "/beatwrap") || !slices.Contains(args, "--id") || !slices.Contains(args, "--") {
			t.Errorf("ExecStart = %q, want beatwrap --id %%i ... -- COMMAND", v["ExecStart"][0])
		}
		grace, stop := graceOf(t, args), mustDuration(t, v["TimeoutStopSec"][0])
		if stop <= grace {
			t.Errorf("TimeoutStopSec %v, want more than beatwrap's --grace %v", stop, grace)
		}
	})
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// unitValues reads the Key=value lines of a unit under systemd/.
func unitValues(t *testing.T, unit string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("systemd", unit))
	if err != nil {
		t.Fatal(err)
	}
	v := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		if k, val, ok := strings.Cut(line, "="); ok {
			v[k] = append(v[k], val)
		}
	}
	return v
}

// k8sObject is the part of a Kubernetes object these tests read.
type k8sObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int            `json:"replicas"`
		Selector json.RawMessage `json:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec podSpec `json:"spec"`
		} `json:"template"`
		Ports []struct {
			TargetPort any `json:"targetPort"`
		} `json:"ports"`
	} `json:"spec"`
	StringData map[string]string `json:"stringData"`
	Data       map[string]string `json:"data"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int             `json:"terminationGracePeriodSeconds"`
	SecurityContext               *securityContext `json:"securityContext"`
	Containers                    []struct {
		Name    string   `json:"name"`
		Command []string `json:"command"`
		Args    []string `json:"args"`
		Env     []struct {
			Name      string `json:"name"`
			ValueFrom *struct {
				FieldRef *struct {
					FieldPath string `json:"fieldPath"`
				} `json:"fieldRef"`
				SecretKeyRef *struct {
					Name     string `json:"name"`
					Key      string `json:"key"`
					Optional bool   `json:"optional"`
				} `json:"secretKeyRef"`
			} `json:"valueFrom"`
		} `json:"env"`
		Ports []struct {
			Name          string `json:"name"`
			ContainerPort int    `json:"containerPort"`
		} `json:"ports"`
		ReadinessProbe  *probe           `json:"readinessProbe"`
		LivenessProbe   *probe           `json:"livenessProbe"`
		SecurityContext *securityContext `json:"securityContext"`
		Resources       struct {
			Requests map[string]string `json:"requests"`
			Limits   map[string]string `json:"limits"`
		} `json:"resources"`
	} `json:"containers"`
}

type securityContext struct {
	RunAsNonRoot             *bool `json:"runAsNonRoot"`
	AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
}

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
	PeriodSeconds    int `json:"periodSeconds"`
	FailureThreshold int `json:"failureThreshold"`
}

// TestKubernetes builds the manifests with kubectl kustomize when kubectl is
// there (offline: no cluster is needed or contacted), and checks their
// structure: what a cluster's schema validation would not catch.
func TestKubernetes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/: %v", err)
	}

	t.Run("kustomize", func(t *testing.T) {
		if _, err := exec.LookPath("kubectl"); err != nil {
			t.Skip("kubectl not found: kustomization not built")
		}
		out := run(t, time.Minute, "kubectl", "kustomize", "kubernetes")
		for _, kind := range []string{"kind: Deployment", "kind: Service", "kind: Secret"} {
			if !strings.Contains(out, kind) {
				t.Errorf("kubectl kustomize output has no %q", kind)
			}
		}
	})

	var objs []k8sObject
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, raw := range yamlDocs(t, data) {
			var o k8sObject
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s document %d: want apiVersion, kind and metadata.name, got %q %q %q",
					f, i+1, o.APIVersion, o.Kind, o.Metadata.Name)
			}
			objs = append(objs, o)
		}
	}
	find := func(kind, name string) k8sObject {
		t.Helper()
		for _, o := range objs {
			if o.Kind == kind && o.Metadata.Name == name {
				return o
			}
		}
		t.Fatalf("no %s %q in kubernetes/", kind, name)
		return k8sObject{}
	}
	secrets := map[string]map[string]bool{}
	for _, o := range objs {
		if o.Kind == "Secret" {
			keys := map[string]bool{}
			for k := range o.StringData {
				keys[k] = true
			}
			for k := range o.Data {
				keys[k] = true
			}
			secrets[o.Metadata.Name] = keys
		}
	}

	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		t.Run("Deployment "+o.Metadata.Name, func(t *testing.T) {
			var sel struct {
				MatchLabels map[string]string `json:"matchLabels"`
			}
			if err := json.Unmarshal(o.Spec.Selector, &sel); err != nil || len(sel.MatchLabels) == 0 {
				t.Errorf("selector %s: want matchLabels", o.Spec.Selector)
			}
			for k, v := range sel.MatchLabels {
				if o.Spec.Template.Metadata.Labels[k] != v {
					t.Errorf("selector %s=%s does not match the pod template's labels", k, v)
				}
			}
			pod := o.Spec.Template.Spec
			for _, c := range pod.Containers {
				nonRoot := (pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot) ||
					(c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil && *c.SecurityContext.RunAsNonRoot)
				if !nonRoot {
					t.Errorf("container %s: want runAsNonRoot", c.Name)
				}
				if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
					t.Errorf("container %s: want allowPrivilegeEscalation: false", c.Name)
				}
				if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
					t.Errorf("container %s: want cpu and memory requests and a memory limit, got %v %v", c.Name, c.Resources.Requests, c.Resources.Limits)
				}
				for _, e := range c.Env {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Optional {
						continue
					}
					ref := e.ValueFrom.SecretKeyRef
					if !secrets[ref.Name][ref.Key] {
						t.Errorf("container %s: env %s refers to secret %s key %s, which kubernetes/ does not define", c.Name, e.Name, ref.Name, ref.Key)
					}
				}
			}
		})
	}

	t.Run("beatwatch", func(t *testing.T) {
		o := find("Deployment", "beatwatch")
		if o.Spec.Replicas == nil || *o.Spec.Replicas != 2 {
			t.Errorf("replicas = %v, want 2", o.Spec.Replicas)
		}
		c := o.Spec.Template.Spec.Containers[0]
		argv := append(slices.Clone(c.Command), c.Args...)
		if i := slices.Index(argv, "--recover"); i < 0 || i+1 >= len(argv) || argv[i+1] != "none" {
			t.Errorf("command line %q: want --recover none", argv)
		}
		for name, p := range map[string]*probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
				t.Errorf("%s probe: want httpGet /healthz", name)
			}
		}

		svc := find("Service", "beatwatch")
		var sel map[string]string
		if err := json.Unmarshal(svc.Spec.Selector, &sel); err != nil || len(sel) == 0 {
			t.Fatalf("Service selector %s: want labels", svc.Spec.Selector)
		}
		for k, v := range sel {
			if o.Spec.Template.Metadata.Labels[k] != v {
				t.Errorf("Service selects %s=%s, which beatwatch's pods do not carry", k, v)
			}
		}
		for _, p := range svc.Spec.Ports {
			name, isName := p.TargetPort.(string)
			if !isName {
				continue
			}
			var named bool
			for _, cp := range c.Ports {
				named = named || cp.Name == name
			}
			if !named {
				t.Errorf("Service targetPort %q is no port of the beatwatch container", name)
			}
		}
	})

	t.Run("example-agent", func(t *testing.T) {
		o := find("Deployment", "example-agent")
		pod := o.Spec.Template.Spec
		c := pod.Containers[0]
		argv := append(slices.Clone(c.Command), c.Args...)
		if len(argv) == 0 || filepath.Base(argv[0]) != "beatwrap" || !slices.Contains(argv, "--") {
			t.Errorf("command line %q: want beatwrap [flags] -- COMMAND", argv)
		}
		if pod.TerminationGracePeriodSeconds == nil {
			t.Fatal("no terminationGracePeriodSeconds")
		}
		grace, stop := graceOf(t, argv), time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second
		if stop <= grace {
			t.Errorf("terminationGracePeriodSeconds %v, want more than beatwrap's --grace %v", stop, grace)
		}
		var idFromPodName bool
		for _, e := range c.Env {
			if e.Name == "BEATWRAP_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
				idFromPodName = true
			}
		}
		if !idFromPodName {
			t.Error("want BEATWRAP_ID from the downward API's metadata.name")
		}

		// The kubelet restarts a stalled agent: --on-stall report leaves
		// it the job, /livez on the --health-listen port tells it when.
		flag := func(name string) string {
			if i := slices.Index(argv, name); i >= 0 && i+1 < len(argv) {
				return argv[i+1]
			}
			return ""
		}
		if got := flag("--on-stall"); got != "report" {
			t.Errorf("--on-stall %q, want report: the kubelet restarts the pod", got)
		}
		if flag("--stall-timeout") == "" {
			t.Error("no --stall-timeout: /livez would never say stalled")
		}
		p := c.LivenessProbe
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/livez" {
			t.Fatalf("liveness probe %+v, want httpGet /livez", p)
		}
		_, listenPort, err := net.SplitHostPort(flag("--health-listen"))
		if err != nil {
			t.Fatalf("--health-listen %q: %v", flag("--health-listen"), err)
		}
		var probed bool
		for _, cp := range c.Ports {
			if strconv.Itoa(cp.ContainerPort) == listenPort && (p.HTTPGet.Port == cp.Name || fmt.Sprint(p.HTTPGet.Port) == listenPort) {
				probed = true
			}
		}
		if !probed {
			t.Errorf("liveness probe port %v is not the --health-listen port %s", p.HTTPGet.Port, listenPort)
		}
	})
}

// flagSets are the flags and variables of the real binaries, read from
// their --help.
type flagSets struct {
	flags map[string]map[string]bool // "beatwrap", "beatwrap report", "beatwrap health", "beatwatch", "beatwatch status"
	env   map[string]bool
}

var (
	helpFlag = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z][a-z0-9-]*)\b`)
	helpEnv  = regexp.MustCompile(`\(env ((?:BEATWRAP|BEATWATCH)_[A-Z0-9_]+)\)`)
)

func readFlagSets(t *testing.T) flagSets {
	t.Helper()
	bins := buildBinaries(t)
	fs := flagSets{flags: map[string]map[string]bool{}, env: map[string]bool{
		"BEATWRAP_AGENT_ID": true, // set for the child, not a flag (CONTRACT.md)
	}}
	for _, cmd := range []string{"beatwrap", "beatwrap report", "beatwrap health", "beatwatch", "beatwatch status"} {
		argv := strings.Fields(cmd)
		help := run(t, time.Minute, filepath.Join(bins, argv[0]), append(argv[1:], "--help")...)
		set := map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(help))
		for sc.Scan() {
			if m := helpFlag.FindStringSubmatch(sc.Text()); m != nil {
				set[m[1]] = true
			}
			for _, m := range helpEnv.FindAllStringSubmatch(sc.Text(), -1) {
				fs.env[m[1]] = true
			}
		}
		if len(set) < 3 {
			t.Fatalf("%s --help: found only %v flags in:\n%s", cmd, set, help)
		}
		fs.flags[cmd] = set
	}
	return fs
}

// otherTools are programs whose flags the files also show; a flag after one
// of them is not ours to check.
var otherTools = map[string]bool{
	"docker": true, "docker-compose": true, "compose": true, "kubectl": true, "kustomize": true,
	"systemctl": true, "systemd-analyze": true, "journalctl": true, "go": true, "make": true,
	"python": true, "python3": true, "COPY": true, "curl": true, "redis-server": true,
	"redis-cli": true, "install": true, "helm": true, "git": true,
}

var (
	flagToken = regexp.MustCompile(`^--[a-z][a-z0-9-]*$`)
	envToken  = regexp.MustCompile(`^(BEATWRAP|BEATWATCH)_[A-Z0-9_]+$`)
)

// check returns a finding for each --flag that the program it follows does
// not have, and each BEATWRAP_/BEATWATCH_ variable that sets no flag. The
// program is the last beatwrap or beatwatch word before the flag (with its
// subcommand); after another tool's name or beatwrap's "--" flags are not
// checked. lineBreaks says whether a line ends a command (Dockerfiles,
// Markdown, units) unless it ends in a backslash; in YAML a command spans
// list items on several lines.
func (fs flagSets) check(text string, lineBreaks bool) []string {
	var findings []string
	prog := ""
	isSep := func(r rune) bool {
		return r == ' ' || r == '\t' || strings.ContainsRune("\"'`[](),;|={}$*", r)
	}
	for n, line := range strings.Split(text, "\n") {
		words := strings.FieldsFunc(line, isSep)
		for i, word := range words {
			w := strings.TrimRight(word, ":.,")
			switch base := filepath.Base(w); {
			case w == "--":
				if strings.HasPrefix(prog, "beatwrap") {
					prog = "other" // the rest is COMMAND and its arguments
				}
			case (base == "beatwrap" || base == "beatwatch") && (w == base || strings.HasPrefix(w, "/") || strings.HasPrefix(w, "./") || strings.HasPrefix(w, "bin/")):
				// A program or its path; beatwrap/beatwrap:dev is an image.
				prog = base
				if i+1 < len(words) {
					if sub := words[i+1]; (base == "beatwrap" && (sub == "report" || sub == "health")) || (base == "beatwatch" && sub == "status") {
						prog += " " + sub
					}
				}
			case otherTools[w]:
				prog = "other"
			case flagToken.MatchString(w):
				name := strings.TrimPrefix(w, "--")
				switch prog {
				case "other":
				case "":
					if !fs.flags["beatwrap"][name] && !fs.flags["beatwatch"][name] {
						findings = append(findings, fmt.Sprintf("line %d: %s is a flag of neither beatwrap nor beatwatch", n+1, w))
					}
				default:
					if !fs.flags[prog][name] {
						findings = append(findings, fmt.Sprintf("line %d: %s is not a flag of %s", n+1, w, prog))
					}
				}
			case envToken.MatchString(w):
				if !fs.env[w] {
					findings = append(findings, fmt.Sprintf("line %d: %s sets no flag", n+1, w))
				}
			}
		}
		if lineBreaks && !strings.HasSuffix(strings.TrimSpace(line), `\`) {
			prog = ""
		}
	}
	return findings
}

// TestFlagsExist looks up every flag and variable the deployment files name
// in the real binaries' --help: a typo there fails here, not in production.
func TestFlagsExist(t *testing.T) {
	fs := readFlagSets(t)

	t.Run("the check finds typos", func(t *testing.T) {
		tests := []struct {
			name, text string
			lineBreaks bool
			want       int
		}{
			{"good", "beatwrap --grace 10s --id x -- python3 agent.py --not-ours", true, 0},
			{"typo", "beatwrap --grace 10s --stall-timout 2m -- agent", true, 1},
			{"wrong program", "beatwatch serve --grace 10s", true, 1},
			{"subcommand", "beatwatch status --watcher http://x -o json", true, 0},
			{"yaml list", "command: [\"/beatwatch\", \"serve\"]\nargs:\n  - --recover\n  - none\n  - --recovr", false, 1},
			{"other tool", "docker run --rm --network host img", true, 0},
			{"image name is no program", "beatwatch:\n  image: beatwrap/beatwrap:dev\n  command: [serve, --listen, x]", false, 0},
			{"variable", "BEATWRAP_ID: x\nBEATWATCH_ALERT_WEBHOK: y", false, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := fs.check(tt.text, tt.lineBreaks); len(got) != tt.want {
					t.Errorf("check(%q) = %q, want %d findings", tt.text, got, tt.want)
				}
			})
		}
	})

	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		base := d.Name()
		if strings.HasSuffix(base, ".go") || strings.HasPrefix(base, "bench") {
			return nil // the tests, and the benchmark scripts others keep
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("found only %v under deploy/", files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			yaml := strings.HasSuffix(f, ".yaml") || strings.HasSuffix(f, ".yml")
			for _, finding := range fs.check(string(data), !yaml) {
				t.Errorf("%s %s", f, finding)
			}
		})
	}
}
