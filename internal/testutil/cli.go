package testutil

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/beatwrap/beatwrap/internal/cli"
)

// CheckCommandDocs checks what both binaries document about themselves:
// the README's flag reference is what cobra declares (UPDATE_README=1
// rewrites it), the package comment in doc.go lists every flag, and each
// shell's completion script is produced. newRoot builds a fresh command
// writing to out.
func CheckCommandDocs(t *testing.T, name, prefix string, newRoot func(out *strings.Builder) *cobra.Command) {
	t.Helper()
	t.Run("readme", func(t *testing.T) {
		body := cli.FlagsMarkdown(newRoot(&strings.Builder{}), prefix)
		update := os.Getenv("UPDATE_README") == "1"
		ok, err := cli.SyncReadme("../../README.md", name+" flags", body, update)
		if err != nil {
			t.Fatal(err)
		}
		if !ok && !update {
			t.Fatalf("README.md's %s flag reference is out of date: run UPDATE_README=1 go test ./cmd/%s -run TestCommandDocs", name, name)
		}
	})
	t.Run("doc.go", func(t *testing.T) {
		doc, err := os.ReadFile("doc.go")
		if err != nil {
			t.Fatal(err)
		}
		newRoot(&strings.Builder{}).Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && !strings.Contains(string(doc), "--"+f.Name+" ") {
				t.Errorf("doc.go does not list --%s", f.Name)
			}
		})
	})
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run("completion "+shell, func(t *testing.T) {
			var out strings.Builder
			root := newRoot(&out)
			root.SetArgs([]string{"completion", shell})
			if err := root.Execute(); err != nil {
				t.Fatalf("completion %s: %v", shell, err)
			}
			if !strings.Contains(out.String(), name) {
				t.Errorf("completion %s does not mention %s:\n%.200s", shell, name, out.String())
			}
		})
	}
}
