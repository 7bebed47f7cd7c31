package watch

import (
	"context"
	"strconv"
	"time"

	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// reconcileFinals runs after an outage: a final beat (stopped, exited)
// published while the watcher was blind never reaches it, as pub/sub keeps
// nothing, but the agent's hash has it. Each agent this watcher judges whose
// hash carries a final beat it has not seen gets that beat now, so an agent
// stopped during a failover is stopped, not failed. Beats it has seen are
// recognised by their sequence and ignored.
func (w *Watcher) reconcileFinals(ctx context.Context) {
	wait := 200 * time.Millisecond
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		applied := 0
		err := w.redis.EachAgents(ctx, func(hashes []redisfleet.AgentHash) {
			for _, h := range hashes {
				st := wire.Status(h.Fields["status"])
				if !st.Final() {
					continue
				}
				if _, ok := w.mon.Get(h.ID); !ok {
					continue // another replica's, or gone
				}
				r := recordOf(h)
				b := wire.Beat{
					AgentID: h.ID, AgentType: r.Type, Host: r.Host, PID: r.PID, Status: st,
					Sequence: r.Sequence, Timestamp: r.LastHeartbeat, IntervalMs: r.IntervalMs,
					MissedBeats: r.MissedBeats, ContainerID: r.ContainerID,
				}
				if code, err := strconv.Atoi(h.Fields["exitCode"]); err == nil {
					b.ExitCode = &code
				}
				// The monitor tells its subscribers of the change.
				if _, ok, _ := w.mon.Observe(b, w.now()); ok {
					applied++
				}
			}
		})
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
			continue
		}
		if applied > 0 {
			w.log.Info("final beats sent while redis was unreachable read from the agents' hashes", "agents", applied)
		}
		return
	}
}
