package dataflow

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays: exponential from Min, capped at Max,
// with jitter so that many nodes reconnecting to one Redis after a restart
// do not arrive in lockstep. A Backoff is owned by one goroutine.
type Backoff struct {
	// Min is the first delay; the sources check that it is positive.
	Min time.Duration
	// Max caps the delay (Min if it is lower).
	Max time.Duration

	attempt int
}

// Next returns the delay before the next attempt: a random duration in
// [d/2, d] where d doubles with every call up to Max.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < b.attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	b.attempt++
	half := d / 2
	return half + rand.N(d-half+1)
}

// Reset starts again from Min after a successful connection.
func (b *Backoff) Reset() { b.attempt = 0 }

// sleepCtx waits d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
