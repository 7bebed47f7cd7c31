package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// maxTypo is the edit distance up to which a word is taken for a mistyped
// command name: two slips (a swapped pair, a missing and a doubled letter).
const maxTypo = 2

// NearCommands returns the subcommands of root (help included) that name
// looks like a mistyping of, the nearest ones; nil when none is within two
// edits. Case is ignored.
func NearCommands(root *cobra.Command, name string) []string {
	if name == "" {
		return nil
	}
	best := maxTypo + 1
	var near []string
	for _, c := range root.Commands() {
		if c.Hidden {
			continue
		}
		d := editDistance(strings.ToLower(name), strings.ToLower(c.Name()))
		switch {
		case d > maxTypo:
		case d < best:
			best, near = d, []string{c.Name()}
		case d == best:
			near = append(near, c.Name())
		}
	}
	return near
}

// editDistance is the number of single-character insertions, deletions,
// substitutions and swaps of neighbours that turn a into b (optimal string
// alignment distance), counted in runes.
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// rows[i][j] is the distance between s[:i] and t[:j]; only the last
	// three rows are needed.
	prev2 := make([]int, len(t)+1)
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}
