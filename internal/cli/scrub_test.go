package cli

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestScrubBlock(t *testing.T) {
	block := []byte("A=1\x00TOKEN=s3cret\x00TOKENX=keep\x00B==x\x00")
	got := scrubBlock(block, []string{"TOKEN", "B"})
	want := []byte("A=1\x00TOKEN=\x00\x00\x00\x00\x00\x00\x00TOKENX=keep\x00B=\x00\x00\x00")
	if !bytes.Equal(got, want) {
		t.Errorf("scrubBlock = %q, want %q", got, want)
	}
}

// TestScrubEnvProc runs this test binary again with a secret in its starting
// environment: after ScrubEnv, /proc/<pid>/environ, read by another process
// as an agent would read its parent's, no longer holds it.
func TestScrubEnvProc(t *testing.T) {
	if os.Getenv("SCRUB_HELPER") == "1" {
		if _, err := ScrubEnv("SCRUB_SECRET"); err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
		}
		if _, ok := os.LookupEnv("SCRUB_SECRET"); ok {
			os.Stdout.WriteString("still in os.Environ\n")
		}
		os.Stdout.WriteString("scrubbed\n")
		// Wait for the test to read our environ from outside.
		os.Stdin.Read(make([]byte, 1))
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestScrubEnvProc$")
	cmd.Env = append(os.Environ(), "SCRUB_HELPER=1", "SCRUB_SECRET=hunter2-secret", "SCRUB_OTHER=stays")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	lines := make(chan string, 1)
	go func() {
		var out strings.Builder
		buf := make([]byte, 512)
		for !strings.Contains(out.String(), "scrubbed\n") {
			n, err := stdout.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		lines <- out.String()
	}()
	select {
	case out := <-lines:
		if out != "scrubbed\n" {
			t.Fatalf("helper said %q", out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not scrub within 30s")
	}
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(environ, []byte("hunter2-secret")) {
		t.Errorf("/proc/%d/environ still holds the secret", cmd.Process.Pid)
	}
	if !bytes.Contains(environ, []byte("SCRUB_OTHER=stays\x00")) {
		t.Errorf("/proc/%d/environ lost a variable that was not scrubbed", cmd.Process.Pid)
	}
}
