package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestListenFailureNamesTheFlag: an address beatwatch cannot listen on
// is a bad --listen value, as for beatwrap --health-listen: exit 2 with a
// one-line message naming --listen and the address; a port in use also
// says how to pick another.
func TestListenFailureNamesTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--listen", addr},
			"beatwatch: listen on " + addr + ": the port is in use (another beatwatch?): choose another with --listen or BEATWATCH_LISTEN, e.g. --listen 127.0.0.1:0 for any free port: "},
		{[]string{"serve", "--recover", "none", "--listen", "192.0.2.1:0"},
			"beatwatch: listen on 192.0.2.1:0 (--listen, BEATWATCH_LISTEN): "},
		{[]string{"demo", "--beatwrap", "/bin/true", "--listen", addr},
			"beatwatch: demo watcher: listen on " + addr + ": the port is in use (another beatwatch?): choose another with --listen"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			p := startProc(t, "cmd/beatwatch", nil, tt.args...)
			if code := p.wait(20 * time.Second); code != 2 {
				t.Fatalf("exit code = %d, want 2; stderr:\n%s", code, p.stderr)
			}
			// One line and nothing before it: nothing was started (serve
			// with its default recovery would have said so in the log).
			msg := strings.TrimSpace(p.stderr.String())
			if strings.Contains(msg, "\n") {
				t.Errorf("stderr has more than the one line:\n%s", msg)
				msg = msg[strings.LastIndex(msg, "\n")+1:]
			}
			if !strings.HasPrefix(msg, tt.want) {
				t.Errorf("stderr %q, want it to start %q", msg, tt.want)
			}
		})
	}
}
