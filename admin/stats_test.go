package admin_test

import (
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/observe"
)

func TestStatsCountRealTraffic(t *testing.T) {
	e := start(t, nil)
	c := e.dial(t)
	const n = 25
	e.publish(t, n, 0)
	receive(t, c, n)
	var st observe.Stats
	wait5(t, "stats settle", func() bool {
		getJSON(t, e.url("/api/websocket/stats"), &st)
		return st.Pool.TotalMessagesSent == n
	})
	if st.Connection.MessagesForwarded != n || st.Connection.ActiveConnections != 1 || st.Health.Status != "healthy" ||
		st.Dataflow.MessagesForwarded != n || len(st.Dataflow.Sources) != 1 || st.Dataflow.Sources[0].Received != n {
		t.Fatalf("stats = %+v", st)
	}
	var h observe.HealthStatus
	if code := getJSON(t, e.url("/api/websocket/health"), &h); code != 200 || h.Status != "healthy" || h.Connections != 1 || h.Performance.AvgLatency <= 0 {
		t.Fatalf("health %d %+v", code, h)
	}
	var ls map[string]any
	getJSON(t, e.url("/api/websocket/status"), &ls)
	_, port, _ := net.SplitHostPort(e.addr)
	if ls["status"] != "available" || ls["endpoint"] != "/ws" || ls["clients"].(float64) != 1 || jsonText(ls["port"]) != port {
		t.Fatalf("legacy status = %v", ls)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func wait5(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEndpointShapes checks every JSON answer carries the fields of
// PROTOCOL.md with their JSON types.
func TestEndpointShapes(t *testing.T) {
	e := start(t, nil)
	c := e.dial(t)
	e.publish(t, 3, 0)
	receive(t, c, 3)
	obj, num, str, arr := "object", "number", "string", "array"
	tests := []struct {
		name, method, path string
		want               map[string]string // dotted path -> JSON type
	}{
		{"stats", "GET", "/api/websocket/stats", map[string]string{
			"connection": obj, "subscription": obj, "pool": obj, "dataflow": obj, "health": obj,
			"connection.totalConnections": num, "connection.activeConnections": num, "connection.totalSubscriptions": num,
			"connection.averageConnectionDuration": num, "connection.messagesForwarded": num, "connection.errorsEncountered": num,
			"connection.lastActivity":         num,
			"subscription.totalSubscriptions": num, "subscription.activeFilters": num, "subscription.matchOperations": num,
			"subscription.lastActivity": num,
			"pool.totalConnections":     num, "pool.activeConnections": num, "pool.errorConnections": num, "pool.totalMessagesSent": num,
			"pool.totalBytesSent": num, "pool.averageLatency": num, "pool.memoryUsage": num, "pool.bufferUtilization": num,
			"pool.connectionTurnover": num, "dataflow.sources": arr,
			"health.status": str, "health.connections": num, "health.uptime": num, "health.performance.avgLatency": num,
			"health.performance.memoryUsage": num,
		}},
		{"health", "GET", "/api/websocket/health", map[string]string{
			"status": str, "connections": num, "uptime": num, "performance": obj, "performance.avgLatency": num, "performance.memoryUsage": num,
		}},
		{"metrics", "GET", "/api/websocket/metrics", map[string]string{
			"latency.avg": num, "latency.p50": num, "latency.p95": num, "latency.p99": num, "latency.max": num,
			"throughput.messagesPerSecond": num, "throughput.bytesPerSecond": num, "connections": num,
			"memory.heapMB": num, "memory.rssMB": num, "memory.level": str, "shed": obj, "shed.queue_full": num,
		}},
		{"flush", "POST", "/api/websocket/flush", map[string]string{"flushedConnections": num, "flushedMessages": num}},
		{"status", "GET", "/api/websocket/status", map[string]string{"status": str, "port": num, "clients": num, "endpoint": str}},
		{"connections", "GET", "/api/websocket/connections", map[string]string{
			"total": num, "offset": num, "limit": num, "connections": arr,
		}},
		{"drain state", "GET", "/api/websocket/drain", map[string]string{"draining": "boolean", "connections": num, "windowMs": num}},
		{"livez", "GET", "/livez", map[string]string{"status": str}},
		{"readyz", "GET", "/readyz", map[string]string{"status": str}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v map[string]any
			if code := call(t, tt.method, e.url(tt.path), "", "", &v); code != http.StatusOK {
				t.Fatalf("status %d: %v", code, v)
			}
			var missing []string
			for path, typ := range tt.want {
				if got := jsonType(lookup(v, path)); got != typ {
					missing = append(missing, path+": "+got+", want "+typ)
				}
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Fatalf("%s:\n%v\nin %s", tt.path, missing, jsonText(v))
			}
		})
	}
	// One connection entry carries every field of the listing.
	var page map[string]any
	getJSON(t, e.url("/api/websocket/connections"), &page)
	conn := page["connections"].([]any)[0].(map[string]any)
	for _, f := range []string{"id", "remoteAddr", "connectedAt", "lastActivity", "messagesSent", "bytesSent", "errors", "state", "queueDepth", "filters"} {
		if _, ok := conn[f]; !ok {
			t.Fatalf("connection entry lacks %q: %v", f, conn)
		}
	}
}

func lookup(v map[string]any, path string) any {
	var cur any = v
	start := 0
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == '.' {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			if cur, ok = m[path[start:i]]; !ok {
				return nil
			}
			start = i + 1
		}
	}
	return cur
}

func jsonType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case float64:
		return "number"
	case string:
		return "string"
	case bool:
		return "boolean"
	case nil:
		return "missing/null"
	}
	return "?"
}

func TestMetricsThroughputOverWindow(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Metrics.Window = time.Minute; c.Queue.MaxMessages = 1000 })
	a, b := e.dial(t), e.dial(t)
	const n = 200
	e.publish(t, n, 0)
	receive(t, a, n)
	receive(t, b, n)
	var st observe.Stats
	wait5(t, "deliveries counted", func() bool {
		getJSON(t, e.url("/api/websocket/stats"), &st)
		return st.Pool.TotalMessagesSent == 2*n
	})
	var m observe.Metrics
	getJSON(t, e.url("/api/websocket/metrics"), &m)
	if m.Throughput.WindowMs <= 0 || m.Throughput.WindowMs > 60000 {
		t.Fatalf("window %d ms", m.Throughput.WindowMs)
	}
	// The whole run fits in the window: rate x window gives back the totals
	// (windowMs is rounded to the millisecond).
	covers := func(rate float64, want uint64) bool {
		w := float64(m.Throughput.WindowMs)
		return rate*(w-1)/1000 <= float64(want)*1.001 && rate*(w+1)/1000 >= float64(want)*0.999
	}
	if !covers(m.Throughput.MessagesPerSecond, 2*n) || !covers(m.Throughput.ForwardedPerSecond, n) ||
		!covers(m.Throughput.BytesPerSecond, st.Pool.TotalBytesSent) {
		t.Fatalf("throughput %+v over %d ms, want %d frames, %d messages, %d bytes", m.Throughput, m.Throughput.WindowMs, 2*n, n, st.Pool.TotalBytesSent)
	}
	if m.Latency.Count != 2*n || m.Connections != 2 || m.Memory.HeapMB <= 0 || m.Memory.RSSMB <= 0 || m.Memory.Level != "normal" {
		t.Fatalf("metrics = %+v", m)
	}
}

// TestMetricsLatencyPercentiles back-dates the pipeline's receivedAt by 1..100
// ms, so the real ingest-to-write latencies are spread over that range.
func TestMetricsLatencyPercentiles(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Metrics.Window = time.Minute })
	c := e.dial(t)
	begin := time.Now()
	for k := 1; k <= 100; k++ {
		e.publish(t, 1, time.Duration(k)*time.Millisecond)
	}
	receive(t, c, 100)
	var m observe.Metrics
	wait5(t, "latency counted", func() bool {
		getJSON(t, e.url("/api/websocket/metrics"), &m)
		return m.Latency.Count == 100
	})
	// Each latency is its back-dating (rounded down to the millisecond) plus
	// the time the proxy took, at most the time the test took to publish and
	// receive; buckets are exact to 6.25 %.
	slack := float64(time.Since(begin))/1e6 + 1
	for _, q := range []struct {
		name      string
		got, want float64
	}{
		{"avg", m.Latency.Avg, 50.5}, {"p50", m.Latency.P50, 50}, {"p95", m.Latency.P95, 95},
		{"p99", m.Latency.P99, 99}, {"max", m.Latency.Max, 100},
	} {
		if q.got < q.want*0.93 || q.got > q.want*1.07+slack {
			t.Fatalf("%s = %.2f ms, want about %.0f ms (latency %+v)", q.name, q.got, q.want, m.Latency)
		}
	}
	if !(m.Latency.P50 <= m.Latency.P95 && m.Latency.P95 <= m.Latency.P99 && m.Latency.P99 <= m.Latency.Max) {
		t.Fatalf("percentiles out of order: %+v", m.Latency)
	}
}

// TestShedCountersFromRealDrops sends frames larger than a connection's
// whole queue: each is shed as too_large and counted in metrics.
func TestShedCountersFromRealDrops(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Queue.MaxBytes = 4096 })
	e.dial(t)
	for i := 0; i < 7; i++ {
		md := big(i)
		if err := e.in.Output(t.Context(), md); err != nil {
			t.Fatal(err)
		}
	}
	var m observe.Metrics
	wait5(t, "shed counted", func() bool {
		getJSON(t, e.url("/api/websocket/metrics"), &m)
		return m.Shed["too_large"] == 7
	})
	if m.Shed["queue_full"] != 0 || m.Shed[observe.ShedDispatchQueue] != 0 {
		t.Fatalf("shed = %v", m.Shed)
	}
}

// TestMetricsWindowSlides: rates and latency describe only the last
// metrics.window; older traffic falls out while the totals remain.
func TestMetricsWindowSlides(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Metrics.Window = 300 * time.Millisecond })
	c := e.dial(t)
	e.publish(t, 20, 0)
	receive(t, c, 20)
	var m observe.Metrics
	wait5(t, "deliveries in the window", func() bool {
		getJSON(t, e.url("/api/websocket/metrics"), &m)
		return m.Latency.Count == 20 && m.Throughput.MessagesPerSecond > 0
	})
	if m.Throughput.WindowMs > 300 {
		t.Fatalf("window %d ms, want at most 300", m.Throughput.WindowMs)
	}
	wait5(t, "window slides past the traffic", func() bool {
		getJSON(t, e.url("/api/websocket/metrics"), &m)
		return m.Latency.Count == 0 && m.Throughput.MessagesPerSecond == 0 && m.Throughput.BytesPerSecond == 0
	})
	if m.Latency.P99 != 0 || m.Latency.Max != 0 || m.Throughput.WindowMs < 200 {
		t.Fatalf("empty window: %+v", m)
	}
	var st observe.Stats
	getJSON(t, e.url("/api/websocket/stats"), &st)
	if st.Pool.TotalMessagesSent != 20 {
		t.Fatalf("totals must stay: %+v", st.Pool)
	}
}
