// Package tokenbucket is the token bucket behind every rate in wsproxy:
// upgrades per address and in total (admission), messages and bad frames
// per connection (proxy), snapshot work per connection (dispatch).
package tokenbucket

import "time"

// Bucket holds up to Burst tokens, refilled at Rate per second. The zero
// value is empty and never refills. Not safe for concurrent use: the caller
// serialises access.
type Bucket struct {
	Rate, Burst, Tokens float64
	last                time.Time
}

// New returns a full bucket.
func New(rate float64, burst int, now time.Time) Bucket {
	return Bucket{Rate: rate, Burst: float64(burst), Tokens: float64(burst), last: now}
}

// Take removes one token if there is one.
func (b *Bucket) Take(now time.Time) bool { return b.TakeN(now, 1) }

// TakeN removes n tokens if there are that many.
func (b *Bucket) TakeN(now time.Time, n float64) bool {
	b.Refill(now)
	if b.Tokens < n {
		return false
	}
	b.Tokens -= n
	return true
}

// Refill adds the tokens earned since the last refill.
func (b *Bucket) Refill(now time.Time) {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.Tokens = min(b.Burst, b.Tokens+d*b.Rate)
		b.last = now
	}
}
