package admission

import (
	"time"

	"wsproxy/config"
	"wsproxy/internal/tokenbucket"
)

// Verdict is what to do with a client frame under its connection's
// message rate.
type Verdict int

// Verdicts of MessageRate.Take.
const (
	Allow Verdict = iota // process it
	Warn                 // drop it and answer RATE_LIMIT_EXCEEDED (the first over the rate)
	Drop                 // drop it silently
	Close                // drop it and close the connection with 1008 (past the grace)
)

// MessageRate is one connection's client-message rate limit
// (limits.message_rate, message_burst, rate_limit_grace). Only the
// connection's read loop uses it.
type MessageRate struct {
	b       tokenbucket.Bucket
	on      bool
	over    int // messages over the rate since the last one under it
	grace   int
	warned  bool
	dropped uint64
}

// NewMessageRate returns the limit of cfg; off when message_rate is
// negative.
func NewMessageRate(cfg config.LimitsConfig) MessageRate {
	if cfg.MessageRate <= 0 {
		return MessageRate{}
	}
	return MessageRate{b: tokenbucket.New(cfg.MessageRate, cfg.MessageBurst, time.Now()), on: true, grace: cfg.RateLimitGrace}
}

// Take applies the rate to a frame that costs n messages. Over the rate,
// the first frame is to be answered (Warn); a client that goes on past
// rate_limit_grace more frames before slowing down is to be closed.
func (l *MessageRate) Take(n int) Verdict {
	if !l.on || l.b.TakeN(time.Now(), float64(n)) {
		l.over, l.warned = 0, false
		return Allow
	}
	l.over++
	l.dropped++
	switch {
	case !l.warned:
		l.warned = true
		return Warn
	case l.over > l.grace:
		return Close
	}
	return Drop
}

// Rate is the sustained messages per second allowed.
func (l *MessageRate) Rate() float64 { return l.b.Rate }

// Dropped counts the frames dropped over the rate.
func (l *MessageRate) Dropped() uint64 { return l.dropped }

// ErrorBudget is one connection's bad-frame budget: a token bucket of
// limits.max_bad_frames_per_minute tokens refilled over a minute, so that a
// client sending bad frames at or below that rate is never closed. Only the
// connection's read loop uses it.
type ErrorBudget struct {
	b  tokenbucket.Bucket
	on bool
}

// NewErrorBudget returns the budget of cfg; off when
// max_bad_frames_per_minute is negative.
func NewErrorBudget(cfg config.LimitsConfig) ErrorBudget {
	if cfg.MaxBadFramesPerMinute <= 0 {
		return ErrorBudget{}
	}
	n := cfg.MaxBadFramesPerMinute
	return ErrorBudget{b: tokenbucket.New(float64(n)/60, n, time.Now()), on: true}
}

// Take spends one bad frame; false when the budget is exhausted.
func (e *ErrorBudget) Take() bool { return !e.on || e.b.Take(time.Now()) }

// PerMinute is the budget's size.
func (e *ErrorBudget) PerMinute() int { return int(e.b.Burst) }
