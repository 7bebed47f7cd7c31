package watch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

// cutoffGap is how long Redis must leave the subscription alone for a run
// of cut-offs to be over: closer than that, each one is part of the run.
const cutoffGap = time.Minute

// cutoffs is a run of subscriptions Redis closed one after the other, as an
// oversize PUBLISH every second or so does (each one larger than the
// watcher's pub/sub output buffer limit). Each costs the watcher a moment
// of blindness, during which no agent is failed; one a second keeps it
// from failing anyone. The run is logged once, with what the watcher knows
// of its cause, and once when it is over; the cut-offs in between are
// counted, not logged.
type cutoffs struct {
	last     *redisfleet.ClosedError // counted already (a sharded watcher reports one several times)
	first    time.Time               // the run's first cut-off
	at       time.Time               // its latest
	n        int
	channels map[string]int
	logged   bool
}

// noteCutoff counts err when it is a new cut-off, and says whether the
// watcher is in a run of them (two or more), when each outage is not
// logged on its own. The caller holds blindMu.
func (w *Watcher) noteCutoff(err error, now time.Time) bool {
	c := &w.cut
	var ce *redisfleet.ClosedError
	if errors.As(err, &ce) && ce != c.last {
		c.last = ce
		w.metrics.SubscriptionLost()
		if c.n > 0 && now.Sub(c.at) > cutoffGap {
			w.endCutoffs(now)
		}
		if c.n == 0 {
			c.first, c.channels = now, map[string]int{}
		}
		c.n++
		c.at = now
		c.channels[ce.Channel]++
		if c.n == 2 && !c.logged {
			c.logged = true
			go w.logCutoffs(*ce, c.n, maps.Clone(c.channels))
		}
	}
	return c.n >= 2 && now.Sub(c.at) <= cutoffGap
}

// endCutoffs closes a run of cut-offs that is over at now, saying so if the
// run was logged. The caller holds blindMu.
func (w *Watcher) endCutoffs(now time.Time) {
	c := &w.cut
	if c.logged {
		w.log.Info("redis stopped cutting off the beats subscription", "redis", w.redis.String(),
			"cutoffs", c.n, "channels", channelCounts(c.channels), "lasted", c.at.Sub(c.first).Round(time.Second).String())
	}
	w.cut = cutoffs{last: c.last}
}

// checkCutoffs ends a run of cut-offs once Redis has left the subscription
// alone for cutoffGap.
func (w *Watcher) checkCutoffs(now time.Time) {
	w.blindMu.Lock()
	defer w.blindMu.Unlock()
	if w.cut.n > 0 && now.Sub(w.cut.at) > cutoffGap {
		w.endCutoffs(now)
	}
}

// logCutoffs says, once per run, that Redis keeps cutting the watcher off:
// on which channels, how large the messages were that reached it (those
// over a beat's size limit no beatwrap sends), what the last subscription
// received before its cut (next to nothing, then the cut: one message
// larger than the output buffer limit), Redis's limit and its own count of
// such cut-offs when it may be read, and the settings that stop it.
//
// A Redis that does not answer a PING right after closing the subscription
// did not cut the watcher off: it is down or restarting (twice within
// cutoffGap), and the log says that instead, with no advice on limits.
func (w *Watcher) logCutoffs(last redisfleet.ClosedError, n int, channels map[string]int) {
	ping, cancelPing := context.WithTimeout(context.Background(), time.Second)
	defer cancelPing()
	if err := w.redis.Ping(ping); err != nil {
		w.log.Error("redis closed the beats subscription again and does not answer: it is down or restarting; no agent is declared failed until it is back and one timeout has passed",
			"redis", w.redis.String(), "closed", n, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	attrs := []any{"redis", w.redis.String(), "channel", last.Channel, "channels", channelCounts(channels), "cutoffs", n,
		"last_subscription", fmt.Sprintf("lived %v and received %v", last.Lived.Round(time.Millisecond), last.Got)}
	var oversize []string
	for _, ch := range slices.Sorted(maps.Keys(w.redis.Traffic())) {
		if t := w.redis.Traffic()[ch]; t.Oversize > 0 {
			oversize = append(oversize, fmt.Sprintf("%s: %d messages over %d bytes, the largest %d bytes", ch, t.Oversize, maxBeat, t.Largest))
		}
	}
	if len(oversize) > 0 {
		attrs = append(attrs, "oversize", strings.Join(oversize, "; "))
	}
	cause := "unknown"
	limit, err := w.redis.PubsubLimit(ctx)
	if err != nil {
		limit = "unknown: " + err.Error()
	} else if hard := hardLimit(limit); hard > 0 && last.Got.Bytes < hard/2 {
		// A subscription cut off after receiving far less than its limit
		// was not behind: one message was larger than the whole buffer, or
		// the connection was killed; Redis tells its client neither.
		cause = fmt.Sprintf("not a watcher falling behind (it had received %d bytes): one message larger than the pub/sub output buffer limit of %d bytes, or the connection killed (CLIENT KILL, a restart)", last.Got.Bytes, hard)
	} else if hard > 0 {
		cause = fmt.Sprintf("messages faster than beatwatch reads them, past the limit of %d bytes", hard)
	}
	attrs = append(attrs, "cause", cause, "pubsub_limit", limit)
	if k, err := w.redis.OutputBufferCutoffs(ctx); err == nil {
		attrs = append(attrs, "redis_output_buffer_disconnections", k)
	}
	attrs = append(attrs, "fix", "let only agents publish on the beat channels (an ACL user per binary, README Security), "+
		"CONFIG SET proto-max-bulk-len 1mb so that Redis refuses an oversize PUBLISH, "+
		"and CONFIG SET client-output-buffer-limit \"pubsub "+RecommendedPubsubLimit+"\"")
	w.log.Warn("redis keeps cutting off the beats subscription: while it does, beatwatch is blind at each cut-off and fails no agent", attrs...)
}

// maxBeat is the largest beat, for the log.
const maxBeat = 64 << 10

// hardLimit reads the hard limit in bytes out of a pub/sub limit
// ("33554432 8388608 60"), or 0.
func hardLimit(limit string) int64 {
	f := strings.Fields(limit)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n
}

// channelCounts writes cut-offs per channel as "heartbeats ×3, heartbeats:2 ×1".
func channelCounts(m map[string]int) string {
	var out []string
	for _, ch := range slices.Sorted(maps.Keys(m)) {
		out = append(out, ch+" ×"+strconv.Itoa(m[ch]))
	}
	return strings.Join(out, ", ")
}
