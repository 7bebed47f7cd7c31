package watch

import (
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

func TestFleetBeatParses(t *testing.T) {
	b, err := wire.ParseBeat(appendFleetBeat(nil, 123456, time.Now().UnixMilli(), 7, 10*time.Second))
	if err != nil || b.AgentID != "agent-123456" || b.IntervalMs != 10000 || b.Sequence != 7 || len(b.ContainerID) != 64 {
		t.Fatalf("fleet beat: %+v %v", b, err)
	}
}
