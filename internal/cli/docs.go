package cli

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// FlagsMarkdown renders every flag of root and its subcommands as markdown
// tables, with the variable that sets each one: the README's flag reference
// is generated from this, never written by hand.
func FlagsMarkdown(root *cobra.Command, prefix string) string {
	var b strings.Builder
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		fs := c.NonInheritedFlags()
		rows := 0
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" {
				rows++
			}
		})
		if rows > 0 && !(c != root && c.Name() == "serve") {
			fmt.Fprintf(&b, "`%s`\n\n| flag | variable | default | meaning |\n|---|---|---|---|\n", c.UseLine())
			fs.VisitAll(func(f *pflag.Flag) {
				if f.Name == "help" {
					return
				}
				name := "`--" + f.Name + "`"
				if f.Shorthand != "" {
					name = "`-" + f.Shorthand + "`, " + name
				}
				def := f.DefValue
				if def == "" || def == "[]" {
					def = "—"
				} else {
					def = "`" + def + "`"
				}
				usage := envNote.ReplaceAllString(f.Usage, "")
				fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", name, EnvName(prefix, f.Name), def, strings.ReplaceAll(usage, "|", "\\|"))
			})
			b.WriteString("\n")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return b.String()
}

var envNote = regexp.MustCompile(` \(env [A-Z_]+\)$`)

// SyncReadme replaces the text between the markers
// "<!-- BEGIN name -->" and "<!-- END name -->" in the file at path with
// body. With write false it only reports whether the file is up to date.
func SyncReadme(path, name, body string, write bool) (upToDate bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	begin, end := "<!-- BEGIN "+name+" -->\n", "<!-- END "+name+" -->"
	s := string(data)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return false, fmt.Errorf("%s has no %q … %q markers", path, strings.TrimSpace(begin), end)
	}
	updated := s[:i+len(begin)] + body + s[j:]
	if updated == s {
		return true, nil
	}
	if write {
		return false, os.WriteFile(path, []byte(updated), 0o644)
	}
	return false, nil
}
