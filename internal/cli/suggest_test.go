package cli

import (
	"slices"
	"testing"

	"github.com/spf13/cobra"
)

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"health", "health", 0},
		{"helth", "health", 1},
		{"haelth", "health", 1}, // a swap is one slip
		{"reprot", "report", 1},
		{"chekpoint", "checkpoint", 1},
		{"verison", "version", 1},
		{"hlth", "health", 2},
		{"heal", "health", 2},
		{"sleep", "help", 3},
		{"", "help", 4},
		{"hëalth", "health", 1}, // counted in characters, not bytes
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestNearCommands(t *testing.T) {
	root := &cobra.Command{Use: "beatwrap"}
	for _, name := range []string{"report", "health", "checkpoint", "version", "help"} {
		root.AddCommand(&cobra.Command{Use: name})
	}
	root.AddCommand(&cobra.Command{Use: "hidden", Hidden: true})
	tests := []struct {
		name string
		want []string
	}{
		{"helth", []string{"health"}},
		{"HEALTH", []string{"health"}},
		{"hepl", []string{"help"}},
		{"hel", []string{"help"}},
		{"hidde", nil},
		{"sleep", nil},
		{"python3", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := NearCommands(root, tt.name); !slices.Equal(got, tt.want) {
			t.Errorf("NearCommands(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
