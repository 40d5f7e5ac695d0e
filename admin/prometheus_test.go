package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
)

func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	return mfs
}

// value returns the value of the metric of family name whose labels include
// labels (name, value pairs); ok false when absent.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func TestPrometheusExpositionMatchesTraffic(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Queue.MaxBytes = 4096
		// Health is exported as it is judged; on a busy machine the 15 ms
		// average-latency default could judge it degraded, which is not
		// what this test is about.
		c.Health.LatencyDegraded, c.Health.LatencyUnhealthy = time.Hour, 2*time.Hour
	})
	a, b := e.dial(t), e.dial(t)
	b.Send(t, `{"type":"subscribe","payload":{"exchange":["binance"]}}`)
	b.NextOfType(t, "subscribed", wait)
	b.Send(t, `not json`)
	b.NextOfType(t, "error", wait)
	const n = 10
	e.publish(t, n, 0)
	receive(t, a, n)
	receive(t, b, n)
	for i := 0; i < 3; i++ { // larger than a whole queue: shed as too_large, twice each
		if err := e.in.Output(context.Background(), big(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.in.Output(context.Background(), dataflow.MarketData{Exchange: strings.Repeat("x", 65)}); err == nil {
		t.Fatal("an invalid message was accepted")
	}
	var st observe.Stats
	wait5(t, "counters settle", func() bool {
		getJSON(t, e.url("/api/websocket/stats"), &st)
		return st.Pool.TotalMessagesSent == 2*n && st.Pool.Shed["too_large"] == 6
	})
	mfs := scrape(t, e.url("/metrics"))
	want := []struct {
		name   string
		labels []string
		v      float64
	}{
		{"wsproxy_connections_active", nil, 2},
		{"wsproxy_connections_total", nil, 2},
		{"wsproxy_messages_forwarded_total", nil, n + 3},
		{"wsproxy_messages_sent_total", nil, 2 * n},
		{"wsproxy_bytes_sent_total", nil, float64(st.Pool.TotalBytesSent)},
		{"wsproxy_shed_messages_total", []string{"reason", "too_large"}, 6},
		{"wsproxy_shed_messages_total", []string{"reason", "queue_full"}, 0},
		{"wsproxy_client_errors_total", []string{"reason", "invalid_message"}, 1},
		{"wsproxy_client_errors_total", []string{"reason", "unknown_type"}, 0},
		{"wsproxy_server_errors_total", []string{"kind", "dispatch_dropped"}, 0},
		{"wsproxy_error_budget_closes_total", nil, 0},
		{"wsproxy_subscriptions_active", nil, 1},
		{"wsproxy_dispatch_dropped_total", nil, 0},
		{"wsproxy_source_up", []string{"source", "test", "type", "inprocess"}, 1},
		{"wsproxy_source_messages_total", []string{"source", "test"}, n + 3},
		{"wsproxy_source_rejected_total", []string{"source", "test"}, 1},
		{"wsproxy_health_status", nil, 0},
		{"wsproxy_memory_level", nil, 0},
		{"wsproxy_draining", nil, 0},
	}
	for _, w := range want {
		got, ok := value(mfs, w.name, w.labels...)
		if !ok || got != w.v {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.v)
		}
	}
	if v, ok := value(mfs, "wsproxy_memory_heap_bytes"); !ok || v <= 0 {
		t.Errorf("heap bytes %v", v)
	}
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Error("Go runtime collector missing")
	}
	h := mfs["wsproxy_delivery_latency_seconds"]
	if h == nil || h.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("latency histogram missing: %v", h)
	}
	hist := h.Metric[0].Histogram
	if hist.GetSampleCount() != 2*n || hist.GetSampleSum() <= 0 {
		t.Fatalf("histogram count %d sum %g, want %d deliveries", hist.GetSampleCount(), hist.GetSampleSum(), 2*n)
	}
	var prev uint64
	les := map[float64]bool{}
	for _, bk := range hist.Bucket {
		if bk.GetCumulativeCount() < prev {
			t.Fatal("buckets not cumulative")
		}
		prev = bk.GetCumulativeCount()
		les[bk.GetUpperBound()] = true
	}
	if !les[0.015] || !les[0.03] || prev > 2*n {
		t.Fatalf("buckets %v", hist.Bucket)
	}
}

// The series the alerts need beside the STATS ones: capacity, the memory
// monitor's usage and threshold, slow-consumer closes.
func TestPrometheusCapacityMemoryAndSlowCloses(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.MaxConnections = 321
		c.Memory.Threshold = 64 << 20
	})
	mfs := scrape(t, e.url("/metrics"))
	for name, want := range map[string]float64{
		"wsproxy_connections_max":            321,
		"wsproxy_memory_threshold_bytes":     64 << 20,
		"wsproxy_slow_consumer_closes_total": 0,
	} {
		if v, ok := value(mfs, name); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	// Usage is the monitor's last sample (taken every sample_interval).
	wstest.Eventually(t, wait, "a memory sample in wsproxy_memory_usage_bytes", func() bool {
		v, ok := value(scrape(t, e.url("/metrics")), "wsproxy_memory_usage_bytes")
		return ok && v > 0
	})
	off := start(t, func(c *config.Config) { c.Memory.Threshold = -1 })
	if _, ok := value(scrape(t, off.url("/metrics")), "wsproxy_memory_threshold_bytes"); ok {
		t.Error("wsproxy_memory_threshold_bytes exported with the monitor off")
	}
}
