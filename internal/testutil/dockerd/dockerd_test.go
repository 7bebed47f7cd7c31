package dockerd

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestDockerdLifecycle drives a second engine through what the end-to-end
// tests do with it, and checks that nothing of it is left afterwards.
func TestDockerdLifecycle(t *testing.T) {
	testutil.RequireDocker(t)
	d := Start(t)

	if sys := testutil.Docker(t, "info", "--format", "{{.ID}}"); d.ID() == "" || d.ID() == sys {
		t.Fatalf("engine ID %q, system engine's %q: want one of its own", d.ID(), sys)
	}
	if got := d.Docker(t, "info", "--format", "{{.ID}}"); got != d.ID() {
		t.Errorf("docker info on %s says ID %q, ID() %q", d.Host(), got, d.ID())
	}

	tag := "beatwrap-testutil/busybox:" + strconv.Itoa(os.Getpid())
	testutil.BuildImage(t, tag, map[string]string{"/bin/busybox": "/bin/busybox"}, "/bin/busybox")
	t.Cleanup(func() { testutil.RemoveImage(tag) })
	d.LoadImage(t, tag)
	if _, err := testutil.DockerTry("-H", d.Host(), "image", "inspect", tag); err != nil {
		t.Fatalf("image %s not in the second engine after LoadImage: %v", tag, err)
	}

	t.Run("tls", func(t *testing.T) {
		pool := x509.NewCertPool()
		ca, err := os.ReadFile(filepath.Join(d.CertPath(), "ca.pem"))
		if err != nil || !pool.AppendCertsFromPEM(ca) {
			t.Fatalf("read ca.pem: %v", err)
		}
		cert, err := tls.LoadX509KeyPair(filepath.Join(d.CertPath(), "cert.pem"), filepath.Join(d.CertPath(), "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		url := "https://" + strings.TrimPrefix(d.TLSHost(), "tcp://") + "/_ping"
		with := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
		resp, err := with.Get(url)
		if err != nil {
			t.Fatalf("ping over TLS with the client certificate: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("ping over TLS: %s", resp.Status)
		}
		without := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		if resp, err := without.Get(url); err == nil {
			resp.Body.Close()
			t.Errorf("ping over TLS without a client certificate answered %s, want refused", resp.Status)
		}
	})

	cid := d.Docker(t, "run", "-d", "--network", "host", "--label", testutil.TestLabel(), tag, "sleep", "600")
	pid := d.ContainerPID(t, cid)
	if _, err := testutil.DockerTry("inspect", cid); err == nil {
		t.Errorf("container %s of the second engine is visible to the system engine", cid[:12])
	}

	d.Crash()
	if processExists(pid) {
		t.Errorf("container process %d survived Crash", pid)
	}
	if d.Running() {
		t.Errorf("dockerd runs after Crash")
	}
	if _, err := d.DockerTry("version"); err == nil {
		t.Errorf("engine answers after Crash")
	}

	d.Start()
	if got := d.Docker(t, "inspect", "-f", "{{.State.Status}}", cid); got != "exited" {
		t.Errorf("after the crash the container is %q, want exited", got)
	}
	d.Docker(t, "start", cid)
	pid = d.ContainerPID(t, cid)

	d.Stop()
	if d.Running() {
		t.Errorf("dockerd runs after Stop")
	}
	d.Start()
	d.Docker(t, "start", cid)
	pid = d.ContainerPID(t, cid)

	// What the cleanup does, checked here.
	if err := d.teardown(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if _, err := os.Stat(d.Dir()); !os.IsNotExist(err) {
		t.Errorf("folder %s still there after teardown: %v", d.Dir(), err)
	}
	if m := mountsUnder(d.Dir()); len(m) > 0 {
		t.Errorf("still mounted after teardown: %v", m)
	}
	if p := engineProcesses(d.Dir()); len(p) > 0 {
		t.Errorf("processes left after teardown: %v", p)
	}
	if processExists(pid) {
		t.Errorf("container process %d survived teardown", pid)
	}
}

func TestUnescapeMount(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`/tmp/a`, `/tmp/a`},
		{`/tmp/a\040b`, `/tmp/a b`},
		{`/tmp/a\134b`, `/tmp/a\b`},
		{`/tmp/a\04`, `/tmp/a\04`},
	} {
		if got := unescapeMount(tc.in); got != tc.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
