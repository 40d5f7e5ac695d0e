package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"wsproxy/proxy"
	"wsproxy/upstream"
)

// UpstreamSource supplies the reverse proxy's counters (upstream.url);
// proxy.Server satisfies it.
type UpstreamSource interface {
	UpstreamStats() upstream.Stats
}

var _ UpstreamSource = (*proxy.Server)(nil)

// upstreamCollector exposes the reverse proxy's counters when an upstream
// is configured (nothing otherwise).
type upstreamCollector struct {
	src                      UpstreamSource
	requests, errors, active *prometheus.Desc
}

func newUpstreamCollector(src UpstreamSource) *upstreamCollector {
	return &upstreamCollector{
		src:      src,
		requests: prometheus.NewDesc("wsproxy_upstream_requests_total", "Requests proxied to upstream.url and answered by it (any status).", nil, nil),
		errors:   prometheus.NewDesc("wsproxy_upstream_errors_total", "Proxied requests that failed, by reason: unavailable (502), timeout (504), busy (503), body_too_large (413), aborted (response cut off after its headers).", []string{"reason"}, nil),
		active:   prometheus.NewDesc("wsproxy_upstream_active", "Proxied requests in flight, open event streams included.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.errors
	ch <- c.active
}

// Collect implements prometheus.Collector.
func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.UpstreamStats()
	if !st.Enabled {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.Requests))
	for _, reason := range upstream.Reasons {
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.Errors[reason]), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(st.Active))
}
