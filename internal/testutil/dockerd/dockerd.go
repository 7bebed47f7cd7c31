package dockerd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// Daemon is a Docker Engine of a test's own, started beside the system's,
// so that a test can have two engines on one machine. It has its own config
// file (the system's daemon.json sets a data-root), data root, exec root,
// containerd namespace, socket and key file, so it reports an engine ID of
// its own. It listens on a unix socket and on a loopback TCP port with
// mutual TLS, the way a remote engine is reached.
//
// It can be stopped, crashed and started again on the same state. When the
// test ends it is torn down whatever happened: containers removed, the
// daemon stopped by its pid, every process of it gone, its mounts
// unmounted, its folder removed.
type Daemon struct {
	t       testing.TB
	dir     string
	tlsPort int
	certs   testutil.Certs
	id      string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// dockerdStartTimeout bounds the wait for a new engine to answer; the
// machine may be busy, and a first start sets up its data root.
const dockerdStartTimeout = 60 * time.Second

// Start starts a second Docker Engine for the test and waits until
// it answers. Where one cannot be started (no dockerd, not root, or it does
// not come up) the test skips with the reason, or fails when CI=true.
func Start(t testing.TB) *Daemon {
	t.Helper()
	if runtime.GOOS != "linux" {
		testutil.Unavailable(t, "a second dockerd needs Linux, this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		testutil.Unavailable(t, "a second dockerd needs root (uid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		testutil.Unavailable(t, "dockerd not found on PATH: %v", err)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		testutil.Unavailable(t, "docker CLI not found on PATH: %v", err)
	}
	sweepOnce.Do(sweepStaleDockerds)

	// A short folder: the sockets inside must fit in a unix socket path.
	dir, err := os.MkdirTemp("", dockerdDirPrefix)
	if err != nil {
		t.Fatalf("folder for dockerd: %v", err)
	}
	d := &Daemon{t: t, dir: dir, tlsPort: testutil.FreePort(t)}
	t.Cleanup(func() {
		if err := d.teardown(); err != nil {
			t.Errorf("tear down dockerd in %s: %v", dir, err)
		}
	})
	if n := len(d.socket()) + len("/exec/containerd/containerd.sock.ttrpc"); n > 100 {
		t.Fatalf("folder %s is too long for the engine's sockets (%d bytes); set TMPDIR to a shorter one", dir, n)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	d.certs = testutil.NewCerts(t, filepath.Join(dir, "certs"))
	cfg := map[string]any{}
	if dockerdMajor() < 23 {
		// Docker 20.10 derives the engine ID from this key: without a key
		// of its own, the engine would report the system engine's ID. Later
		// versions keep the ID in the data root and refuse the field.
		cfg["deprecated-key-path"] = filepath.Join(dir, "key.json")
	}
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.start(); err != nil {
		testutil.Unavailable(t, "start a second dockerd: %v\n%s", err, d.Log())
	}
	info, err := d.info()
	if err != nil {
		t.Fatalf("dockerd info: %v", err)
	}
	d.id = info.ID
	return d
}

// Host is the engine's unix socket as a DOCKER_HOST address.
func (d *Daemon) Host() string { return "unix://" + d.socket() }

// TLSHost is the engine's TCP address, which takes only clients with a
// certificate from CertPath: tcp://127.0.0.1:PORT.
func (d *Daemon) TLSHost() string { return fmt.Sprintf("tcp://127.0.0.1:%d", d.tlsPort) }

// CertPath is the folder to give clients as DOCKER_CERT_PATH for TLSHost
// (ca.pem, cert.pem, key.pem), with DOCKER_TLS_VERIFY=1.
func (d *Daemon) CertPath() string { return d.certs.ClientDir }

// ID is the engine's own ID, as its /info reports it.
func (d *Daemon) ID() string { return d.id }

// Dir is the folder holding everything of the engine.
func (d *Daemon) Dir() string { return d.dir }

func (d *Daemon) socket() string { return filepath.Join(d.dir, "docker.sock") }

// Log returns the last lines the daemon wrote.
func (d *Daemon) Log() string {
	data, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// Running reports whether the daemon process is up.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Start starts the engine again on its state, after Stop or Crash, and
// waits until it answers.
func (d *Daemon) Start() {
	d.t.Helper()
	if d.Running() {
		return
	}
	if err := d.start(); err != nil {
		d.t.Fatalf("start dockerd again: %v\n%s", err, d.Log())
	}
}

func (d *Daemon) start() error {
	logf, err := os.OpenFile(filepath.Join(d.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// After a crash the pid files name processes that are gone; the next
	// dockerd would wait for a containerd that a recycled pid stands for.
	for _, f := range []string{"pid", "exec/containerd/containerd.pid"} {
		_ = os.Remove(filepath.Join(d.dir, f))
	}
	ns := "bwd" + strconv.Itoa(os.Getpid()) + "-" + filepath.Base(d.dir)
	cmd := exec.Command("dockerd",
		"--config-file", filepath.Join(d.dir, "daemon.json"),
		"--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "pid"),
		"-H", d.Host(), "-H", d.TLSHost(),
		"--tlsverify", "--tlscacert", d.certs.CA, "--tlscert", d.certs.ServerCert, "--tlskey", d.certs.ServerKey,
		// Never the system engine's containers, networks or firewall.
		"--containerd-namespace", ns, "--containerd-plugins-namespace", ns+"-plugins",
		"--bridge=none", "--iptables=false", "--ip6tables=false",
		// vfs works on any file system, the data root included.
		"--storage-driver=vfs",
		// Containers still running when it stops get this long.
		"--shutdown-timeout=5")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a ^C to the test is not a ^C to the
	// engine; and SIGTERM if the test process dies without tearing down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	d.mu.Lock()
	d.cmd, d.done = cmd, done
	d.mu.Unlock()

	deadline := time.After(dockerdStartTimeout)
	for {
		if err := d.ping(); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("dockerd exited at start: %v", cmd.ProcessState)
		case <-deadline:
			d.stopDaemon(5 * time.Second)
			return fmt.Errorf("dockerd did not answer on %s within %v", d.socket(), dockerdStartTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the engine the way an operator does: SIGTERM to its pid; the
// engine stops its containers (5s each at most) before it exits. SIGKILL
// after 30s.
func (d *Daemon) Stop() {
	d.t.Helper()
	if !d.stopDaemon(30 * time.Second) {
		d.t.Errorf("dockerd did not exit within 30s of SIGTERM; killed\n%s", d.Log())
	}
}

// Crash is the host losing power: every process of the engine (its
// containers, their shims, containerd, dockerd) is SIGKILLed at once. The
// agents in it send no goodbye, and the engine does not answer until Start.
func (d *Daemon) Crash() {
	d.t.Helper()
	pids := d.processes()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	d.mu.Lock()
	done := d.done
	d.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.t.Fatalf("dockerd still running 10s after SIGKILL")
		}
	}
	if !waitGone(pids, 10*time.Second) {
		d.t.Fatalf("engine processes %v still there 10s after SIGKILL", pids)
	}
}

// stopDaemon sends SIGTERM to the daemon and waits up to timeout for it to
// exit, then SIGKILLs it. It reports whether SIGTERM was enough.
func (d *Daemon) stopDaemon(timeout time.Duration) bool {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return false
	}
}

// Docker runs the docker CLI against this engine and returns its trimmed
// output, failing the test on error.
func (d *Daemon) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.DockerTry(args...)
	if err != nil {
		t.Fatalf("docker -H %s %s: %v\n%s", d.Host(), strings.Join(args, " "), err, out)
	}
	return out
}

// DockerTry runs the docker CLI against this engine and returns output and
// error.
func (d *Daemon) DockerTry(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", d.Host()}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// LoadImage copies an image from the system engine into this one (docker
// save | docker load): there is no registry to pull from.
func (d *Daemon) LoadImage(t testing.TB, tag string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	save := exec.CommandContext(ctx, "docker", "save", tag)
	load := exec.CommandContext(ctx, "docker", "-H", d.Host(), "load", "-q")
	pipe, err := save.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var saveErr, loadOut bytes.Buffer
	save.Stderr = &saveErr
	load.Stdin, load.Stdout, load.Stderr = pipe, &loadOut, &loadOut
	if err := save.Start(); err != nil {
		t.Fatalf("docker save %s: %v", tag, err)
	}
	loadErr := load.Run()
	if err := save.Wait(); err != nil {
		t.Fatalf("docker save %s: %v\n%s", tag, err, saveErr.String())
	}
	if loadErr != nil {
		t.Fatalf("docker load %s into %s: %v\n%s", tag, d.Host(), loadErr, loadOut.String())
	}
}

// ContainerPID returns the host pid of a container's first process.
func (d *Daemon) ContainerPID(t testing.TB, id string) int {
	t.Helper()
	pid, err := strconv.Atoi(d.Docker(t, "inspect", "-f", "{{.State.Pid}}", id))
	if err != nil || pid <= 0 {
		t.Fatalf("container %s has no running process (pid %d): %v", id, pid, err)
	}
	return pid
}

func (d *Daemon) client() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.socket())
		}},
	}
}

func (d *Daemon) ping() error {
	resp, err := d.client().Get("http://docker/_ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/_ping: %s", resp.Status)
	}
	return nil
}

type dockerdInfo struct {
	ID   string
	Name string
}

func (d *Daemon) info() (dockerdInfo, error) {
	var info dockerdInfo
	resp, err := d.client().Get("http://docker/info")
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return info, fmt.Errorf("/info: %s: %s", resp.Status, body)
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	return info, err
}

// processes returns the pids of everything the engine runs: the processes
// that name its folder (dockerd, containerd, the shims) and all their
// descendants (the containers' processes).
func (d *Daemon) processes() []int {
	return engineProcesses(d.dir)
}

// teardown removes every trace of the engine: its containers, its
// processes, its mounts and its folder.
func (d *Daemon) teardown() error {
	if d.Running() {
		// Removing the containers through the engine unmounts what it
		// mounted for them.
		if ids, err := d.DockerTry("ps", "-aq"); err == nil && ids != "" {
			_, _ = d.DockerTry(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
	}
	d.stopDaemon(20 * time.Second)
	return removeEngineDir(d.dir)
}

// removeEngineDir kills what is left of an engine living in dir, unmounts
// everything under dir and removes it.
func removeEngineDir(dir string) error {
	pids := engineProcesses(dir)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if !waitGone(pids, 10*time.Second) {
		return fmt.Errorf("processes %v still there 10s after SIGKILL", pids)
	}
	// Mounts stack (a bind over a bind): unmount until none is left.
	for range 5 {
		mounts := mountsUnder(dir)
		if len(mounts) == 0 {
			break
		}
		for _, m := range mounts {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				return fmt.Errorf("umount %s: %w", m, err)
			}
		}
	}
	if m := mountsUnder(dir); len(m) > 0 {
		return fmt.Errorf("still mounted: %v", m)
	}
	return os.RemoveAll(dir)
}

const dockerdDirPrefix = "bwd-"

var sweepOnce sync.Once

// sweepStaleDockerds removes the engines of earlier test processes that
// died before their cleanup ran (a test binary killed by -timeout, say):
// folders whose owner pid is gone.
func sweepStaleDockerds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dockerdDirPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue // not ours, or still being set up
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // its test still runs
		}
		_ = removeEngineDir(dir)
	}
}

// engineProcesses returns the processes of the engine living in dir, and
// their descendants: dockerd (--exec-root dir/exec), its containerd (its
// config is under dir/exec) and the shims (their -address is). A process
// that merely talks to the engine (a beatwatch given dir/docker.sock) is
// not one of them.
func engineProcesses(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	var roots []int
	needle := []byte(dir + "/exec")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			// pid (comm) state ppid ...: comm may hold spaces and parens.
			if i := bytes.LastIndexByte(stat, ')'); i > 0 {
				if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
					if ppid, err := strconv.Atoi(f[1]); err == nil {
						children[ppid] = append(children[ppid], pid)
					}
				}
			}
		}
		if cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(cmdline, needle) {
			roots = append(roots, pid)
		}
	}
	seen := map[int]bool{}
	var out []int
	var walk func(int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		out = append(out, pid)
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return out
}

// waitGone waits until none of pids exists, zombies included (a zombie
// containerd would look alive to the next dockerd through its pid file),
// and reports whether that happened within timeout.
func waitGone(pids []int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for slices.ContainsFunc(pids, processExists) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// processExists reports whether pid is in the process table.
func processExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// mountsUnder returns the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// dockerdMajor returns the major version of the dockerd on PATH, 0 when
// it cannot tell.
func dockerdMajor() int {
	out, err := exec.Command("dockerd", "--version").Output()
	if err != nil {
		return 0
	}
	// "Docker version 20.10.24+dfsg1, build 5d6db84"
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0
	}
	major, _, _ := strings.Cut(f[2], ".")
	n, _ := strconv.Atoi(major)
	return n
}
