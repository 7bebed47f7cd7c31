package deploy_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestBuildContext proves that the repository's .dockerignore lets through
// what deploy/Dockerfile.build copies from the context. That file needs a
// golang image, which cannot be pulled here, so the test keeps its WORKDIR
// and context COPY lines, puts them on scratch, builds that from the
// repository root and looks for the module and a command's source in the
// image.
func TestBuildContext(t *testing.T) {
	testutil.RequireDocker(t)
	f, err := os.Open("Dockerfile.build")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := []string{"FROM scratch"}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "WORKDIR ") ||
			(strings.HasPrefix(line, "COPY ") && !strings.Contains(line, "--from=")) {
			lines = append(lines, line)
		}
	}
	if len(lines) < 3 {
		t.Fatalf("Dockerfile.build has no WORKDIR and COPY lines to check: %q", lines)
	}
	dockerfile := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(dockerfile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	image := "beatwrap-deploy-test/context:" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { _, _ = try(time.Minute, "docker", "rmi", "-f", image) })
	run(t, 2*time.Minute, "docker", "build", "-q", "--label", testutil.TestLabel(),
		"-f", dockerfile, "-t", image, "..")

	cid := run(t, time.Minute, "docker", "create", "--label", testutil.TestLabel(), image, "none")
	t.Cleanup(func() { _, _ = try(time.Minute, "docker", "rm", "-f", cid) })
	for _, want := range []string{"/src/go.mod", "/src/go.sum", "/src/cmd/beatwrap/main.go", "/src/internal/wire/beat.go"} {
		dst := filepath.Join(t.TempDir(), filepath.Base(want))
		if out, err := try(time.Minute, "docker", "cp", cid+":"+want, dst); err != nil {
			t.Errorf("the build context of Dockerfile.build lacks %s (.dockerignore?): %v\n%s", want, err, out)
		}
	}
}
