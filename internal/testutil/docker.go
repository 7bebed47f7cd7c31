package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLabel marks every container and image the tests create, so that
// cleanup finds them all: beatwrap.test=<pid of the test process>.
func TestLabel() string { return "beatwrap.test=" + strconv.Itoa(os.Getpid()) }

// RequireDocker skips (fails in CI) when the Docker Engine does not answer.
func RequireDocker(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		Unavailable(t, "docker CLI not found")
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		Unavailable(t, "docker engine not reachable: %v: %s", err, out)
	}
}

// Docker runs the docker CLI (test setup only: beatwatch itself speaks the
// Engine API) and returns its trimmed output, failing the test on error.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// DockerTry runs the docker CLI and returns output and error.
func DockerTry(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// BuildImage builds an image FROM scratch holding the given files
// (destination in the image -> file on this machine), labelled with
// TestLabel. The caller removes it (RemoveImage), typically in TestMain, as
// several tests share it.
func BuildImage(t testing.TB, tag string, files map[string]string, entrypoint string) {
	t.Helper()
	dir := t.TempDir()
	var df strings.Builder
	df.WriteString("FROM scratch\nLABEL " + TestLabel() + "\n")
	i := 0
	for dst, src := range files {
		name := "f" + strconv.Itoa(i)
		i++
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("read %s: %v", src, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
		df.WriteString("COPY " + name + " " + dst + "\n")
	}
	df.WriteString("ENTRYPOINT [\"" + entrypoint + "\"]\n")
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	Docker(t, "build", "-q", "-t", tag, dir)
}

// RemoveImage removes an image BuildImage built.
func RemoveImage(tag string) { _, _ = DockerTry("rmi", "-f", tag) }

// RemoveTestContainers removes every container this test process labelled.
func RemoveTestContainers() {
	ids, err := DockerTry("ps", "-aq", "--filter", "label="+TestLabel())
	if err != nil || ids == "" {
		return
	}
	_, _ = DockerTry(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
}
