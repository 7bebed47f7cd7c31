package cli

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// The exit code follows the error's type, never its text: a failure whose
// text reads like a usage error (EINVAL's "invalid argument") is 1, and
// cobra's own parse and argument errors are 2.
func TestExecuteExitCodes(t *testing.T) {
	_, listenErr := net.Listen("tcp", "127.0.0.1:99999")
	einval := fmt.Errorf("listen: %w", &net.OpError{Op: "listen", Net: "tcp", Err: fmt.Errorf("invalid argument")})
	tests := []struct {
		name string
		args []string
		fail error // what the serve command returns
		want int
	}{
		{"ok", []string{"serve"}, nil, 0},
		{"unknown flag", []string{"serve", "--no-such-flag"}, nil, 2},
		{"unknown shorthand", []string{"serve", "-z"}, nil, 2},
		{"bad value", []string{"serve", "--count", "many"}, nil, 2},
		{"flag needs an argument", []string{"serve", "--count"}, nil, 2},
		{"unknown command", []string{"frobnicate"}, nil, 2},
		{"extra argument", []string{"serve", "extra"}, nil, 2},
		{"completion without a shell", []string{"completion"}, nil, 2},
		{"usage error of the command", []string{"serve"}, Usagef("--count must be at least 1, got 0"), 2},
		{"run time error that reads like usage", []string{"serve"}, einval, 1},
		{"listen error", []string{"serve"}, listenErr, 1},
		{"exit code of the child", []string{"serve"}, &ExitError{Code: 7}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := &cobra.Command{Use: "prog", Args: cobra.NoArgs, SilenceUsage: true, SilenceErrors: true,
				RunE: func(*cobra.Command, []string) error { return nil }}
			serve := &cobra.Command{Use: "serve", Args: cobra.NoArgs, SilenceUsage: true, SilenceErrors: true,
				RunE: func(*cobra.Command, []string) error { return tt.fail }}
			serve.Flags().Int("count", 1, "a number")
			root.AddCommand(serve, Completion(root))
			var out, stderr bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tt.args)
			if got := Execute(root, "prog", &stderr); got != tt.want {
				t.Errorf("exit code %d, want %d; stderr %q", got, tt.want, stderr.String())
			}
			if tt.want != 0 && tt.want != 7 && !strings.HasPrefix(stderr.String(), "prog: ") {
				t.Errorf("stderr %q, want one line starting with the program name", stderr.String())
			}
		})
	}
}
