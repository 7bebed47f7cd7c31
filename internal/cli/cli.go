package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ExitUsage is the exit code for a bad flag or value: nothing was started.
const ExitUsage = 2

// UsageError is a bad flag, value or argument. Its message names the flag or
// variable and the value it got.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef builds a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// ExitError carries an exit code chosen by the command (the child's code, for
// beatwrap), with no message of its own to print.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit %d", e.Code) }

// Execute runs root and returns the process exit code (see ExitCode). Usage
// errors are typed where they arise: cobra's flag parse errors (through its
// flag-error hook) and every command's argument check return a UsageError,
// so no error text is ever matched to choose the exit code.
func Execute(root *cobra.Command, program string, stderr io.Writer) int {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &UsageError{Msg: err.Error()}
	})
	typeArgs(root)
	return ExitCode(root.Execute(), program, stderr)
}

// typeArgs makes the argument check of c and its subcommands return a
// UsageError.
func typeArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return &UsageError{Msg: err.Error()}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		typeArgs(sub)
	}
}

// ExitCode maps what a command returned to the process exit code, and prints
// the message if there is one. It is the only place exit codes are chosen:
// an ExitError's code, 2 for a UsageError, else 1.
func ExitCode(err error, program string, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	fmt.Fprintf(stderr, "%s: %v\n", program, err)
	var usage *UsageError
	if errors.As(err, &usage) {
		return ExitUsage
	}
	return 1
}

// EnvName is the variable that sets a flag: PREFIX_FLAG_NAME.
func EnvName(prefix, flag string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// BindEnv sets every flag of fs that was not given on the command line from
// its environment variable (PREFIX_FLAG). The flag wins over the variable.
func BindEnv(fs *pflag.FlagSet, prefix string, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := EnvName(prefix, f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = Usagef("%s=%q is not valid for --%s: %v", name, v, f.Name, serr)
		}
	})
	return err
}

// AnnotateEnv adds "(env PREFIX_FLAG)" to every flag's help, so --help and
// the generated docs list the variables.
func AnnotateEnv(fs *pflag.FlagSet, prefix string) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || strings.Contains(f.Usage, "(env ") {
			return
		}
		f.Usage += " (env " + EnvName(prefix, f.Name) + ")"
	})
}

// LogOptions are the logging flags both binaries take.
type LogOptions struct {
	Format string // auto, text, json
	Level  string // debug, info, warn, error
}

// AddFlags registers --log-format and --log-level.
func (o *LogOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Format, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text or json")
	fs.StringVar(&o.Level, "log-level", "info", "log level: debug, info, warn or error")
}

// Logger builds the logger the options ask for, writing to w.
func (o *LogOptions) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	switch strings.ToLower(o.Level) {
	case "debug":
		level = slog.LevelDebug
	case "info", "":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, Usagef("--log-level must be debug, info, warn or error, got %q", o.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch o.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "auto", "":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, Usagef("--log-format must be auto, text or json, got %q", o.Format)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return isTerminal(f) }

// Completion is the `completion bash|zsh|fish` subcommand both binaries share.
func Completion(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish",
		Short:     "Print a shell completion script",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			}
			return Usagef("completion: shell must be bash, zsh or fish, got %q", args[0])
		},
	}
}

// Version is the `version` subcommand both binaries share.
func Version(program string, describe func(string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), describe(program))
		},
	}
}
