package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var builds struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// moduleRoot finds the repository root from this file's location.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds one of the project's commands (a package path relative to
// the module root, e.g. "cmd/beatwrap") once per test process, static, and
// returns the path of the binary.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if p, ok := builds.bins[pkg]; ok {
		return p
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "beatwrap-bin-")
		if err != nil {
			t.Fatalf("temp dir for binaries: %v", err)
		}
		builds.dir = dir
		builds.bins = map[string]string{}
	}
	out := filepath.Join(builds.dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
	cmd.Dir = moduleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	builds.bins[pkg] = out
	return out
}

// CleanupBinaries removes what Binary built; call it from TestMain after the
// tests ran.
func CleanupBinaries() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
}
