package wire

import (
	"strconv"
	"testing"
)

// The shard function is part of the wire format: clients in other languages
// compute it too. These values come from a separate implementation (Python,
// the algorithm as documented on Shard).
func TestShardIsTheDocumentedHash(t *testing.T) {
	tests := []struct {
		id   string
		n    int
		want int
	}{
		{"summariser-1", 16, 13},
		{"agent-0", 3, 0},
		{"a", 2, 0},
		{"node-7-python-abc123", 64, 61},
		{"anything", 1, 0},
		{"anything", 0, 0},
	}
	for _, tt := range tests {
		if got := Shard(tt.id, tt.n); got != tt.want {
			t.Errorf("Shard(%q, %d) = %d, want %d", tt.id, tt.n, got, tt.want)
		}
	}
}

func TestShardSpreadsIds(t *testing.T) {
	const n, ids = 8, 8000
	var per [n]int
	for i := range ids {
		per[Shard("agent-"+strconv.Itoa(i), n)]++
	}
	for s, c := range per {
		if c < ids/n*8/10 || c > ids/n*12/10 {
			t.Errorf("shard %d got %d of %d ids, want about %d", s, c, ids, ids/n)
		}
	}
}

func TestShardChannel(t *testing.T) {
	tests := []struct {
		s, n int
		ch   string
	}{
		{0, 1, "heartbeats"},
		{0, 0, "heartbeats"},
		{3, 4, "heartbeats:3"},
	}
	for _, tt := range tests {
		if got := ShardChannel(tt.s, tt.n); got != tt.ch {
			t.Errorf("ShardChannel(%d, %d) = %q, want %q", tt.s, tt.n, got, tt.ch)
		}
	}
	for ch, want := range map[string]int{"heartbeats:3": 3, "heartbeats": -1, "heartbeats:": -1, "heartbeats:03": -1, "heartbeats:x": -1, "other:3": -1} {
		if got := ParseShardChannel(ch); got != want {
			t.Errorf("ParseShardChannel(%q) = %d, want %d", ch, got, want)
		}
	}
}
