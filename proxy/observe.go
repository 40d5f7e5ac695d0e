package proxy

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"wsproxy/internal/histogram"
)

// operations is the operator-facing state of a Server: the delivery latency
// histogram, the sliding window of rates, the memory level hook and the
// drain. It lives apart from Server's core fields so that the data path
// stays readable.
type operations struct {
	latency  *histogram.Histogram
	win      window
	memLevel atomic.Pointer[func() string]

	draining atomic.Bool
	drainMu  sync.Mutex      // taken before Server.mu
	drain    *DrainStatus    // guarded by drainMu; nil until Drain
	runCtx   context.Context // guarded by Server.mu; set by Serve
}

// sample is the cumulative counters at one instant.
type sample struct {
	at        int64 // unix ns
	sent      uint64
	bytes     uint64
	forwarded uint64
	// errors are server-side failures only (health.error_rate_*): failed
	// writes the server caused, internal errors, dispatcher drops.
	errors uint64
	// received and rejected are the sources' valid and undecodable
	// messages (health.decode_error_rate_*).
	received, rejected uint64
	lat                histogram.Snapshot
}

// window keeps samples taken every span/10 so that rates and latency can be
// read over the last span. Safe for concurrent use.
type window struct {
	span, res time.Duration

	mu   sync.Mutex
	ring []sample // guarded by mu; oldest at head
	head int
	n    int
}

func (w *window) init(span time.Duration) {
	w.span = span
	w.res = max(span/10, 10*time.Millisecond)
	w.ring = make([]sample, int(span/w.res)+2)
}

// nextLocked returns the slot for a new sample, dropping the oldest one
// when the ring is full.
func (w *window) nextLocked() *sample {
	if w.n == len(w.ring) {
		w.head = (w.head + 1) % len(w.ring)
		w.n--
	}
	s := &w.ring[(w.head+w.n)%len(w.ring)]
	w.n++
	return s
}

// baseLocked copies into dst the oldest sample no older than span at now;
// false when there is none.
func (w *window) baseLocked(now int64, dst *sample) bool {
	for i := 0; i < w.n; i++ {
		s := &w.ring[(w.head+i)%len(w.ring)]
		if now-s.at <= int64(w.span) {
			*dst = *s
			return true
		}
	}
	return false
}

// totalsInto reads the server's cumulative counters.
func (s *Server) totalsInto(dst *sample, now time.Time) {
	ps := s.pool.Stats()
	ds := s.disp.Stats()
	dst.at = now.UnixNano()
	dst.sent, dst.bytes, dst.forwarded = ps.MessagesSent, ps.BytesSent, ds.Forwarded
	dst.errors = s.internalErrors.Load() + ps.ServerWriteErrors + ds.Dropped
	dst.received, dst.rejected = 0, 0
	for _, src := range s.sources {
		st := src.Stats()
		dst.received += st.Received
		dst.rejected += st.Rejected
	}
	s.op.latency.Load(&dst.lat)
}

func (s *Server) recordSample(now time.Time) {
	w := &s.op.win
	w.mu.Lock()
	s.totalsInto(w.nextLocked(), now)
	w.mu.Unlock()
}

// runSampler samples the counters every window resolution until ctx ends.
func (s *Server) runSampler(ctx context.Context) {
	t := time.NewTicker(s.op.win.res)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.recordSample(now)
		}
	}
}

// windowView is what happened over the last window.
type windowView struct {
	span                           time.Duration
	sent, bytes, forwarded, errors uint64
	received, rejected             uint64
	lat                            histogram.Snapshot
}

func (s *Server) windowed() *windowView {
	now := time.Now()
	var cur, base sample
	s.totalsInto(&cur, now)
	w := &s.op.win
	w.mu.Lock()
	ok := w.baseLocked(cur.at, &base)
	w.mu.Unlock()
	if !ok {
		base = sample{at: s.started.UnixNano()}
	}
	v := &windowView{
		span:      time.Duration(cur.at - base.at),
		sent:      cur.sent - base.sent,
		bytes:     cur.bytes - base.bytes,
		forwarded: cur.forwarded - base.forwarded,
		errors:    cur.errors - base.errors,
		received:  cur.received - base.received,
		rejected:  cur.rejected - base.rejected,
		lat:       cur.lat,
	}
	v.lat.Sub(&base.lat)
	return v
}

func (v *windowView) perSecond(n uint64) float64 {
	if v.span <= 0 {
		return 0
	}
	return float64(n) / v.span.Seconds()
}

// errorRate is server-side errors / (messages forwarded + those errors) in
// the window, and the number of events it is judged on.
func (v *windowView) errorRate() (rate float64, events uint64) {
	events = v.forwarded + v.errors
	if events == 0 {
		return 0, 0
	}
	return float64(v.errors) / float64(events), events
}

// decodeErrorRate is rejected / (received + rejected) source messages in
// the window, and that number of messages.
func (v *windowView) decodeErrorRate() (rate float64, events uint64) {
	events = v.received + v.rejected
	if events == 0 {
		return 0, 0
	}
	return float64(v.rejected) / float64(events), events
}

// Metrics is the answer of GET /api/websocket/metrics. Latencies are in
// milliseconds, from a message's ingest to the socket write that carried it,
// over the last metrics.window; rates are over the same window.
type Metrics struct {
	Latency     LatencyMetrics    `json:"latency"`
	Throughput  Throughput        `json:"throughput"`
	Connections int64             `json:"connections"`
	Memory      MemoryMetrics     `json:"memory"`
	Shed        map[string]uint64 `json:"shed"`
	// ClientErrors counts client-caused events since start by reason
	// (Server.ClientErrors); ErrorBudgetCloses the clients closed for too
	// many bad frames.
	ClientErrors      map[string]uint64 `json:"clientErrors"`
	ErrorBudgetCloses uint64            `json:"errorBudgetCloses"`
}

// LatencyMetrics summarises the delivery latency histogram (ms).
type LatencyMetrics struct {
	Avg      float64 `json:"avg"`
	P50      float64 `json:"p50"`
	P95      float64 `json:"p95"`
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
	Count    uint64  `json:"count"`
	WindowMs int64   `json:"windowMs"`
}

// Throughput is delivery over the window: data frames and bytes written to
// sockets per second (once per recipient), pipeline messages dispatched per
// second (once per message), the server-side error rate (failed writes the
// server caused, internal errors and dispatcher drops / (messages + those
// errors)) and the sources' decode error rate (rejected / (received +
// rejected)). Client errors are not in either rate (Metrics.ClientErrors).
type Throughput struct {
	MessagesPerSecond  float64 `json:"messagesPerSecond"`
	BytesPerSecond     float64 `json:"bytesPerSecond"`
	ForwardedPerSecond float64 `json:"forwardedPerSecond"`
	ErrorRate          float64 `json:"errorRate"`
	DecodeErrorRate    float64 `json:"decodeErrorRate"`
	WindowMs           int64   `json:"windowMs"`
}

// MemoryMetrics: live heap and resident set in MB, bytes waiting in
// connection queues, and the memory monitor's level (normal, elevated,
// critical).
type MemoryMetrics struct {
	HeapMB      float64 `json:"heapMB"`
	RSSMB       float64 `json:"rssMB"`
	QueuedBytes int64   `json:"queuedBytes"`
	Level       string  `json:"level"`
}

// ShedDispatchQueue names the messages dropped because the dispatcher's
// queue was full, beside the pool's per-connection reasons.
const ShedDispatchQueue = "dispatch_queue_full"

// Metrics returns the windowed latency, rates, memory and shedding counters.
func (s *Server) Metrics() Metrics {
	v := s.windowed()
	ps := s.pool.Stats()
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	m := Metrics{
		Latency: LatencyMetrics{
			Avg: ms(v.lat.Mean()), P50: ms(v.lat.Quantile(0.5)), P95: ms(v.lat.Quantile(0.95)),
			P99: ms(v.lat.Quantile(0.99)), Max: ms(time.Duration(v.lat.Max)),
			Count: v.lat.Count, WindowMs: v.span.Milliseconds(),
		},
		Throughput: Throughput{
			MessagesPerSecond:  v.perSecond(v.sent),
			BytesPerSecond:     v.perSecond(v.bytes),
			ForwardedPerSecond: v.perSecond(v.forwarded),
			WindowMs:           v.span.Milliseconds(),
		},
		Connections: ps.ActiveConnections,
		Memory: MemoryMetrics{
			HeapMB: float64(heapBytes()) / (1 << 20), RSSMB: float64(rssBytes()) / (1 << 20),
			QueuedBytes: ps.QueuedBytes, Level: s.MemoryLevel(),
		},
		Shed: ps.Shed,
	}
	m.Throughput.ErrorRate, _ = v.errorRate()
	m.Throughput.DecodeErrorRate, _ = v.decodeErrorRate()
	m.ClientErrors, m.ErrorBudgetCloses = s.ClientErrors(), s.ErrorBudgetCloses()
	m.Shed[ShedDispatchQueue] = s.disp.Stats().Dropped
	return m
}

// LatencyBuckets returns the cumulative delivery latency histogram since
// start, for Prometheus.
func (s *Server) LatencyBuckets() histogram.Buckets { return s.op.latency.Buckets() }

// HeapBytes returns the live heap in bytes.
func HeapBytes() uint64 { return heapBytes() }

// RSSBytes returns the process's resident set in bytes (0 where
// /proc/self/statm is not available).
func RSSBytes() uint64 { return rssBytes() }

var pageSize = uint64(os.Getpagesize())

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	n, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return n * pageSize
}
