package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"

	"wsproxy/config"
	"wsproxy/observe"
	"wsproxy/pool"
)

// newRegistry returns a registry of its own (never the global default, so
// that several servers in one process stay independent) holding the wsproxy
// collector and the Go runtime and process collectors.
func newRegistry(p Provider) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(p),
		newDeflateCollector(p),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if u, ok := p.(UpstreamSource); ok {
		reg.MustRegister(newUpstreamCollector(u))
	}
	return reg
}

var textFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// prometheus answers GET /metrics in the Prometheus text format.
func (a *API) prometheus(ctx *fasthttp.RequestCtx) {
	mfs, err := a.reg.Gather()
	if err != nil {
		if len(mfs) == 0 {
			writeError(ctx, fasthttp.StatusInternalServerError, "gather: "+err.Error())
			return
		}
		a.log.Warn().Err(err).Msg("metrics partially gathered")
	}
	ctx.SetContentType(string(textFormat))
	ctx.Response.Header.Set("Cache-Control", "no-store")
	enc := expfmt.NewEncoder(ctx, textFormat)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			a.log.Warn().Err(err).Msg("metrics encoding failed")
			return
		}
	}
}

// collector turns one Stats snapshot per scrape into metrics, so that every
// value comes from the same counters as the JSON endpoints.
type collector struct {
	p Provider

	connActive, connTotal, connErrors, clientErrors, subs *prometheus.Desc
	forwarded, sent, bytes, queuedMsgs, queuedBytes       *prometheus.Desc
	dispDropped, dispQueue, shed, latency                 *prometheus.Desc
	srcUp, srcReceived, srcRejected, srcDropped           *prometheus.Desc
	srcGaps, srcSlow                                      *prometheus.Desc
	heap, memLevel, health, draining                      *prometheus.Desc
	serverErrors, budgetCloses                            *prometheus.Desc
	connMax, memUsage, memThreshold, slowCloses           *prometheus.Desc
}

func newCollector(p Provider) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("wsproxy_"+name, help, labels, nil)
	}
	return &collector{
		p:            p,
		connActive:   d("connections_active", "Live WebSocket connections."),
		connTotal:    d("connections_total", "WebSocket connections accepted since start."),
		connErrors:   d("connection_errors_total", "Connections ended by a failed socket write."),
		clientErrors: d("client_errors_total", "Client-caused events by reason (bad frames, unknown types, invalid filters, rate-limit hits, auth and origin refusals, resets); never part of health.", "reason"),
		subs:         d("subscriptions_active", "Filters and channel subscriptions held by live connections."),
		forwarded:    d("messages_forwarded_total", "Pipeline messages dispatched (once per message, whatever the number of recipients)."),
		sent:         d("messages_sent_total", "Data frames written to client sockets (once per recipient)."),
		bytes:        d("bytes_sent_total", "Bytes written to client sockets, WebSocket framing included."),
		queuedMsgs:   d("queued_messages", "Data frames waiting in connection queues."),
		queuedBytes:  d("queued_bytes", "Bytes of data frames waiting in connection queues."),
		dispDropped:  d("dispatch_dropped_total", "Pipeline messages dropped because the dispatcher queue was full."),
		dispQueue:    d("dispatch_queue_length", "Pipeline messages waiting for the dispatcher."),
		shed:         d("shed_messages_total", "Data frames shed from connection queues, by reason.", "reason"),
		latency:      d("delivery_latency_seconds", "Time from a message's ingest to the socket write that carried it to a client."),
		srcUp:        d("source_up", "1 when the source is connected to its transport.", "source", "type"),
		srcReceived:  d("source_messages_total", "Messages received from the source.", "source"),
		srcRejected:  d("source_rejected_total", "Invalid messages rejected from the source.", "source"),
		srcDropped:   d("source_dropped_total", "Messages from the source the dispatcher could not take.", "source"),
		srcGaps:      d("source_gaps_total", "Ranges of messages lost before the source could read them (a stream trimmed past its position).", "source"),
		srcSlow:      d("source_slow_consumer_total", "Slow-consumer events of the source's client library (its buffer overflowed and it dropped).", "source"),
		heap:         d("memory_heap_bytes", "Live Go heap."),
		memLevel:     d("memory_level", "Memory monitor level: 0 normal, 1 elevated, 2 critical."),
		health:       d("health_status", "Health: 0 healthy, 1 degraded, 2 unhealthy."),
		draining:     d("draining", "1 once a drain has started."),
		serverErrors: d("server_errors_total", "Server-side failures, the numerator of the health error rate, by kind.", "kind"),
		budgetCloses: d("error_budget_closes_total", "Clients closed with 1008 for more than limits.max_bad_frames_per_minute bad frames."),
		connMax:      d("connections_max", "Configured connection capacity (max_connections)."),
		memUsage:     d("memory_usage_bytes", "Memory the monitor compares with its threshold: Go heap plus queued bytes, at its last sample."),
		memThreshold: d("memory_threshold_bytes", "Memory monitor threshold (memory.threshold); absent when the monitor is off."),
		slowCloses:   d("slow_consumer_closes_total", "Connections closed with 1008 \"Slow consumer\"."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.connActive, c.connTotal, c.connErrors, c.clientErrors, c.subs,
		c.forwarded, c.sent, c.bytes, c.queuedMsgs, c.queuedBytes,
		c.dispDropped, c.dispQueue, c.shed, c.latency,
		c.srcUp, c.srcReceived, c.srcRejected, c.srcDropped, c.srcGaps, c.srcSlow,
		c.heap, c.memLevel, c.health, c.draining,
		c.serverErrors, c.budgetCloses,
		c.connMax, c.memUsage, c.memThreshold, c.slowCloses,
	} {
		ch <- d
	}
}

var levels = map[string]float64{
	observe.StatusHealthy: 0, observe.StatusDegraded: 1, observe.StatusUnhealthy: 2,
	observe.MemoryNormal: 0, observe.MemoryElevated: 1, observe.MemoryCritical: 2,
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.connActive, float64(st.Connection.ActiveConnections))
	counter(c.connTotal, st.Connection.TotalConnections)
	counter(c.connErrors, st.Pool.ErrorConnections)
	for reason, n := range c.p.ClientErrors() {
		counter(c.clientErrors, n, reason)
	}
	counter(c.budgetCloses, c.p.ErrorBudgetCloses())
	counter(c.serverErrors, st.Pool.ServerWriteErrors, "socket_write")
	counter(c.serverErrors, st.Dataflow.Dropped, "dispatch_dropped")
	counter(c.serverErrors, st.Connection.InternalErrors, "internal")
	gauge(c.subs, float64(st.Connection.TotalSubscriptions))
	counter(c.forwarded, st.Connection.MessagesForwarded)
	counter(c.sent, st.Pool.TotalMessagesSent)
	counter(c.bytes, st.Pool.TotalBytesSent)
	gauge(c.queuedMsgs, float64(st.Pool.QueuedMessages))
	gauge(c.queuedBytes, float64(st.Pool.QueuedBytes))
	counter(c.dispDropped, st.Dataflow.Dropped)
	gauge(c.dispQueue, float64(st.Dataflow.Queued))
	for reason, n := range st.Pool.Shed {
		counter(c.shed, n, reason)
	}
	b := c.p.LatencyBuckets()
	buckets := make(map[float64]uint64, len(b.Bounds))
	for i, le := range b.Bounds {
		buckets[le] = b.Cumulative[i]
	}
	ch <- prometheus.MustNewConstHistogram(c.latency, b.Count, b.Sum, buckets)
	for _, s := range st.Dataflow.Sources {
		up := 0.0
		if s.Connected {
			up = 1
		}
		gauge(c.srcUp, up, s.Name, s.Type)
		counter(c.srcReceived, s.Received, s.Name)
		counter(c.srcRejected, s.Rejected, s.Name)
		counter(c.srcDropped, s.Dropped, s.Name)
		counter(c.srcGaps, s.Gaps, s.Name)
		counter(c.srcSlow, s.SlowConsumer, s.Name)
	}
	gauge(c.heap, float64(observe.HeapBytes()))
	gauge(c.memLevel, levels[c.p.MemoryLevel()])
	gauge(c.health, levels[st.Health.Status])
	dr := 0.0
	if st.Health.Draining {
		dr = 1
	}
	gauge(c.draining, dr)
	counter(c.slowCloses, st.Pool.SlowConsumerCloses)
	if p, ok := c.p.(interface{ Config() config.Config }); ok {
		gauge(c.connMax, float64(p.Config().MaxConnections))
	}
	if p, ok := c.p.(interface{ Pool() *pool.Pool }); ok {
		ms := p.Pool().MemoryStats()
		gauge(c.memUsage, float64(ms.UsageBytes))
		if ms.ThresholdBytes > 0 {
			gauge(c.memThreshold, float64(ms.ThresholdBytes))
		}
	}
}
