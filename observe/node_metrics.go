package observe

import (
	"context"
	"time"

	"wsproxy/internal/histogram"
)

// totalsInto reads the node's cumulative counters.
func (n *Node) totalsInto(dst *Sample, now time.Time) {
	ps := n.p.Pool.Stats()
	ds := n.p.Disp.Stats()
	dst.At = now.UnixNano()
	dst.Sent, dst.Bytes, dst.Forwarded = ps.MessagesSent, ps.BytesSent, ds.Forwarded
	dst.Errors = n.internalErrors.Load() + ps.ServerWriteErrors + ds.Dropped
	dst.Received, dst.Rejected = 0, 0
	for _, src := range n.p.Sources {
		st := src.Stats()
		dst.Received += st.Received
		dst.Rejected += st.Rejected
	}
	n.p.Latency.Load(&dst.Lat)
}

// RecordSample adds the counters as of now to the window.
func (n *Node) RecordSample(now time.Time) {
	n.win.Record(func(dst *Sample) { n.totalsInto(dst, now) })
}

// RunSampler samples the counters every window resolution until ctx ends.
func (n *Node) RunSampler(ctx context.Context) {
	t := time.NewTicker(n.win.Resolution())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n.RecordSample(now)
		}
	}
}

// windowed is what happened over the last metrics.window.
func (n *Node) windowed() *View {
	var cur Sample
	n.totalsInto(&cur, time.Now())
	return n.win.View(cur, n.p.Started)
}

// Metrics returns the windowed latency, rates, memory and shedding counters.
func (n *Node) Metrics() Metrics {
	v := n.windowed()
	ps := n.p.Pool.Stats()
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	m := Metrics{
		Latency: LatencyMetrics{
			Avg: ms(v.Lat.Mean()), P50: ms(v.Lat.Quantile(0.5)), P95: ms(v.Lat.Quantile(0.95)),
			P99: ms(v.Lat.Quantile(0.99)), Max: ms(time.Duration(v.Lat.Max)),
			Count: v.Lat.Count, WindowMs: v.Span.Milliseconds(),
		},
		Throughput: Throughput{
			MessagesPerSecond:  v.PerSecond(v.Sent),
			BytesPerSecond:     v.PerSecond(v.Bytes),
			ForwardedPerSecond: v.PerSecond(v.Forwarded),
			WindowMs:           v.Span.Milliseconds(),
		},
		Connections: ps.ActiveConnections,
		Memory: MemoryMetrics{
			HeapMB: float64(HeapBytes()) / (1 << 20), RSSMB: float64(RSSBytes()) / (1 << 20),
			QueuedBytes: ps.QueuedBytes, Level: n.MemoryLevel(),
		},
		Shed: ps.Shed,
	}
	m.Throughput.ErrorRate, _ = v.ErrorRate()
	m.Throughput.DecodeErrorRate, _ = v.DecodeErrorRate()
	m.ClientErrors, m.ErrorBudgetCloses = n.ClientErrors(), n.ErrorBudgetCloses()
	m.Shed[ShedDispatchQueue] = n.p.Disp.Stats().Dropped
	return m
}

// LatencyBuckets returns the cumulative delivery latency histogram since
// start, for Prometheus.
func (n *Node) LatencyBuckets() histogram.Buckets { return n.p.Latency.Buckets() }
