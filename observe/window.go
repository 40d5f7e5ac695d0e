package observe

import (
	"sync"
	"time"

	"wsproxy/internal/histogram"
)

// Sample is the node's cumulative counters at one instant.
type Sample struct {
	At        int64 // unix ns
	Sent      uint64
	Bytes     uint64
	Forwarded uint64
	// Errors are server-side failures only (health.error_rate_*): failed
	// writes the server caused, internal errors, dispatcher drops.
	Errors uint64
	// Received and Rejected are the sources' valid and undecodable
	// messages (health.decode_error_rate_*).
	Received, Rejected uint64
	Lat                histogram.Snapshot
}

// Window keeps samples taken every span/10 so that rates and latency can be
// read over the last span (metrics.window). Safe for concurrent use.
type Window struct {
	span, res time.Duration

	mu   sync.Mutex
	ring []Sample // guarded by mu; oldest at head
	head int
	n    int
}

// Init sizes the window for span. Call before any other method.
func (w *Window) Init(span time.Duration) {
	w.span = span
	w.res = max(span/10, 10*time.Millisecond)
	w.ring = make([]Sample, int(span/w.res)+2)
}

// Resolution is how often a sample should be recorded.
func (w *Window) Resolution() time.Duration { return w.res }

// Record stores a new sample, filled by fill, dropping the oldest one when
// the ring is full.
func (w *Window) Record(fill func(*Sample)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == len(w.ring) {
		w.head = (w.head + 1) % len(w.ring)
		w.n--
	}
	s := &w.ring[(w.head+w.n)%len(w.ring)]
	w.n++
	fill(s)
}

// baseLocked copies into dst the oldest sample no older than span at now;
// false when there is none.
func (w *Window) baseLocked(now int64, dst *Sample) bool {
	for i := 0; i < w.n; i++ {
		s := &w.ring[(w.head+i)%len(w.ring)]
		if now-s.At <= int64(w.span) {
			*dst = *s
			return true
		}
	}
	return false
}

// View is what happened over the last window.
type View struct {
	Span                           time.Duration
	Sent, Bytes, Forwarded, Errors uint64
	Received, Rejected             uint64
	Lat                            histogram.Snapshot
}

// View returns what happened between the oldest sample within the span and
// cur; without such a sample, since start.
func (w *Window) View(cur Sample, start time.Time) *View {
	var base Sample
	w.mu.Lock()
	ok := w.baseLocked(cur.At, &base)
	w.mu.Unlock()
	if !ok {
		base = Sample{At: start.UnixNano()}
	}
	v := &View{
		Span:      time.Duration(cur.At - base.At),
		Sent:      cur.Sent - base.Sent,
		Bytes:     cur.Bytes - base.Bytes,
		Forwarded: cur.Forwarded - base.Forwarded,
		Errors:    cur.Errors - base.Errors,
		Received:  cur.Received - base.Received,
		Rejected:  cur.Rejected - base.Rejected,
		Lat:       cur.Lat,
	}
	v.Lat.Sub(&base.Lat)
	return v
}

// PerSecond is n over the view's span.
func (v *View) PerSecond(n uint64) float64 {
	if v.Span <= 0 {
		return 0
	}
	return float64(n) / v.Span.Seconds()
}

// ErrorRate is server-side errors / (messages forwarded + those errors) in
// the window, and the number of events it is judged on.
func (v *View) ErrorRate() (rate float64, events uint64) {
	events = v.Forwarded + v.Errors
	if events == 0 {
		return 0, 0
	}
	return float64(v.Errors) / float64(events), events
}

// DecodeErrorRate is rejected / (received + rejected) source messages in
// the window, and that number of messages.
func (v *View) DecodeErrorRate() (rate float64, events uint64) {
	events = v.Received + v.Rejected
	if events == 0 {
		return 0, 0
	}
	return float64(v.Rejected) / float64(events), events
}
