package watch

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunListenError: an address that cannot be listened on is a
// *ListenError naming it, with net.Listen's error inside (EADDRINUSE for a
// port taken); the flag that sets it is the command line's to name.
func TestRunListenError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tt := range []struct {
		addr  string
		inUse bool
		want  string
	}{
		{taken.Addr().String(), true, "listen on " + taken.Addr().String() + ": the port is in use (another beatwatch?): "},
		// TEST-NET-1 (RFC 5737) is on no interface of this machine.
		{"192.0.2.1:0", false, "listen on 192.0.2.1:0: "},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- New(Config{Listen: tt.addr, Log: slog.New(slog.DiscardHandler)}).Run(ctx) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Run on %s did not fail within 10s", tt.addr)
			}
			var le *ListenError
			if !errors.As(err, &le) || le.Addr != tt.addr {
				t.Fatalf("Run = %v, want a *ListenError for %s", err, tt.addr)
			}
			if errors.Is(err, syscall.EADDRINUSE) != tt.inUse {
				t.Errorf("Run = %v: EADDRINUSE %v, want %v", err, !tt.inUse, tt.inUse)
			}
			if !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "--") {
				t.Errorf("Run = %q, want it to start %q and name no flag", err, tt.want)
			}
		})
	}
}
