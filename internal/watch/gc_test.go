package watch

import (
	"testing"
)

func TestGCPercent(t *testing.T) {
	for _, tt := range []struct {
		live uint64
		want int
	}{
		{0, 100}, {10 << 20, 100}, {64 << 20, 100}, {128 << 20, 50}, {256 << 20, 25}, {320 << 20, 20}, {1 << 30, 20},
	} {
		if got := gcPercent(tt.live); got != tt.want {
			t.Errorf("gcPercent(%d MiB) = %d, want %d", tt.live>>20, got, tt.want)
		}
	}
}
