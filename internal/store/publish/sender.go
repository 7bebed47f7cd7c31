package publish

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// Sender delivers beats to a Publisher in the background, so that the beat
// loop, the child and signal handling never wait on the network.
//
// It keeps only the newest beat: when the backend is slow or down, older
// beats are replaced rather than queued, and the first delivery after an
// outage carries the current state. The agent is registered (again) before
// its first beat; every beat rewrites the whole hash, so a Redis that lost
// its data mid-run gets the agent back with the next beat.
type Sender struct {
	pub     Publisher
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	backoff Backoff

	mu      sync.Mutex
	pending *wire.Beat
	wake    chan struct{}

	delivered chan wire.Beat // for tests; nil in production
}

// Backoff bounds the wait between attempts while the backend is down.
type Backoff struct {
	Min, Max time.Duration
}

// SenderConfig is how a Sender delivers.
type SenderConfig struct {
	// Timeout bounds each attempt; it is normally the beat interval,
	// capped at 5s so that a stuck backend is noticed. It also caps the
	// wait between attempts during an outage: retrying less often than the
	// agent beats would keep it silent after the backend is back, long
	// enough for a watcher with a short timeout to call it failed.
	Timeout time.Duration
	// Log is told when an outage or a run of rejections starts and ends.
	Log *slog.Logger
	// Now is the clock outages are timed by; nil is time.Now.
	Now func() time.Time
}

// NewSender wraps pub.
func NewSender(pub Publisher, cfg SenderConfig) *Sender {
	timeout := cfg.Timeout
	if timeout <= 0 || timeout > 5*time.Second {
		timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	const minWait = 250 * time.Millisecond
	return &Sender{
		pub:     pub,
		log:     cfg.Log,
		now:     cfg.Now,
		timeout: timeout,
		backoff: Backoff{Min: min(minWait, timeout), Max: max(timeout, minWait)},
		wake:    make(chan struct{}, 1),
	}
}

// Offer hands over the newest beat; it never blocks.
func (s *Sender) Offer(b wire.Beat) {
	s.mu.Lock()
	s.pending = &b
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sender) take() (wire.Beat, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		return wire.Beat{}, false
	}
	b := *s.pending
	s.pending = nil
	return b, true
}

// putBack returns a beat that could not be delivered, unless a newer one
// arrived meanwhile.
func (s *Sender) putBack(b wire.Beat) {
	s.mu.Lock()
	if s.pending == nil {
		s.pending = &b
	}
	s.mu.Unlock()
}

// Run delivers beats until ctx is done. It registers the agent before the
// first beat.
func (s *Sender) Run(ctx context.Context) error {
	registered := false
	var down time.Time // zero while the backend is up
	rejected := false  // the last beat was rejected
	wait := s.backoff.Min
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
		for {
			b, ok := s.take()
			if !ok {
				break
			}
			err := s.deliver(ctx, b, &registered)
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				if rejected {
					s.log.Info("beats accepted again", "destination", s.pub.String())
					rejected = false
				}
				if !down.IsZero() {
					s.log.Info("beats delivered again", "destination", s.pub.String(), "outage", s.now().Sub(down).Round(time.Millisecond).String())
					down = time.Time{}
				}
				wait = s.backoff.Min
				if s.delivered != nil {
					s.delivered <- b
				}
				continue
			}
			if errors.Is(err, ErrRejected) {
				// The backend is there and said no: retrying the same beat
				// will not help, the next one may. A wrong token rejects
				// every beat: say so once, not at every interval.
				if !rejected {
					if pe := (*PartialError)(nil); errors.As(err, &pe) {
						s.log.Warn("beats written only in part; the agent keeps running, later beats are sent as usual",
							"destination", s.pub.String(), "ran", pe.Ran, "refused", pe.Refused, "error", err)
					} else {
						s.log.Warn("beats rejected; the agent keeps running, later beats are sent as usual", "destination", s.pub.String(), "error", err)
					}
					rejected = true
				}
				continue
			}
			if down.IsZero() {
				down = s.now()
				s.log.Warn("cannot deliver beats; the agent keeps running, retrying with backoff", "destination", s.pub.String(), "error", err)
			}
			s.putBack(b)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			wait = min(wait*2, s.backoff.Max)
		}
	}
}

func (s *Sender) deliver(ctx context.Context, b wire.Beat, registered *bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var partial error
	if !*registered && !b.Status.Final() {
		err := s.pub.Register(ctx, b)
		// A registration written in part (an ACL without +multi) is as
		// much as will ever be written: the beats go on, and the log says
		// what Redis refused.
		if err != nil && !errors.As(err, new(*PartialError)) {
			return err
		}
		*registered, partial = true, err
		if b.Status == wire.StatusStarting {
			return partial
		}
	}
	if err := s.pub.Beat(ctx, b); err != nil {
		return err
	}
	return partial
}

// Flush delivers b as the final beat, trying again until it is delivered or
// timeout has passed: a Redis failing over (Sentinel promoting a replica, a
// Cluster moving a slot) refuses the first attempt and takes the next. It is
// called once, after Run has stopped, when the child has ended for good.
func (s *Sender) Flush(b wire.Beat, stoppedAt time.Time, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		err := s.pub.Final(ctx, b, stoppedAt)
		if err == nil || errors.Is(err, ErrRejected) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}
