package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"wsproxy/internal/histogram"
	"wsproxy/observe"
)

// operations is the operator-facing state of a Server: the delivery latency
// histogram, the sliding window of rates, the memory level hook and the
// drain. It lives apart from Server's core fields so that the data path
// stays readable.
type operations struct {
	latency  *histogram.Histogram
	win      observe.Window
	memLevel atomic.Pointer[func() string]

	draining atomic.Bool
	drainMu  sync.Mutex      // taken before Server.mu
	drain    *DrainStatus    // guarded by drainMu; nil until Drain
	runCtx   context.Context // guarded by Server.mu; set by Serve
}

// totalsInto reads the server's cumulative counters.
func (s *Server) totalsInto(dst *observe.Sample, now time.Time) {
	ps := s.pool.Stats()
	ds := s.disp.Stats()
	dst.At = now.UnixNano()
	dst.Sent, dst.Bytes, dst.Forwarded = ps.MessagesSent, ps.BytesSent, ds.Forwarded
	dst.Errors = s.internalErrors.Load() + ps.ServerWriteErrors + ds.Dropped
	dst.Received, dst.Rejected = 0, 0
	for _, src := range s.sources {
		st := src.Stats()
		dst.Received += st.Received
		dst.Rejected += st.Rejected
	}
	s.op.latency.Load(&dst.Lat)
}

func (s *Server) recordSample(now time.Time) {
	s.op.win.Record(func(dst *observe.Sample) { s.totalsInto(dst, now) })
}

// runSampler samples the counters every window resolution until ctx ends.
func (s *Server) runSampler(ctx context.Context) {
	t := time.NewTicker(s.op.win.Resolution())
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

// windowed is what happened over the last metrics.window.
func (s *Server) windowed() *observe.View {
	var cur observe.Sample
	s.totalsInto(&cur, time.Now())
	return s.op.win.View(cur, s.started)
}

// Metrics returns the windowed latency, rates, memory and shedding counters.
func (s *Server) Metrics() observe.Metrics {
	v := s.windowed()
	ps := s.pool.Stats()
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	m := observe.Metrics{
		Latency: observe.LatencyMetrics{
			Avg: ms(v.Lat.Mean()), P50: ms(v.Lat.Quantile(0.5)), P95: ms(v.Lat.Quantile(0.95)),
			P99: ms(v.Lat.Quantile(0.99)), Max: ms(time.Duration(v.Lat.Max)),
			Count: v.Lat.Count, WindowMs: v.Span.Milliseconds(),
		},
		Throughput: observe.Throughput{
			MessagesPerSecond:  v.PerSecond(v.Sent),
			BytesPerSecond:     v.PerSecond(v.Bytes),
			ForwardedPerSecond: v.PerSecond(v.Forwarded),
			WindowMs:           v.Span.Milliseconds(),
		},
		Connections: ps.ActiveConnections,
		Memory: observe.MemoryMetrics{
			HeapMB: float64(observe.HeapBytes()) / (1 << 20), RSSMB: float64(observe.RSSBytes()) / (1 << 20),
			QueuedBytes: ps.QueuedBytes, Level: s.MemoryLevel(),
		},
		Shed: ps.Shed,
	}
	m.Throughput.ErrorRate, _ = v.ErrorRate()
	m.Throughput.DecodeErrorRate, _ = v.DecodeErrorRate()
	m.ClientErrors, m.ErrorBudgetCloses = s.ClientErrors(), s.ErrorBudgetCloses()
	m.Shed[observe.ShedDispatchQueue] = s.disp.Stats().Dropped
	return m
}

// LatencyBuckets returns the cumulative delivery latency histogram since
// start, for Prometheus.
func (s *Server) LatencyBuckets() histogram.Buckets { return s.op.latency.Buckets() }
