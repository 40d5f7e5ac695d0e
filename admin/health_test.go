package admin_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"wsproxy/admin"
	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
	"wsproxy/proxy"
)

func health(t testing.TB, e *env) (int, observe.HealthStatus) {
	t.Helper()
	var h observe.HealthStatus
	code := getJSON(t, e.url("/api/websocket/health"), &h)
	return code, h
}

func ready(t testing.TB, e *env) int {
	t.Helper()
	return getJSON(t, e.url("/readyz"), &map[string]any{})
}

// TestHealthFollowsDeliveryLatency drives latency with messages whose
// pipeline receive time lies in the past: they really took that long from
// ingest to the socket.
func TestHealthFollowsDeliveryLatency(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Health.LatencyDegraded = 200 * time.Millisecond
		c.Health.LatencyUnhealthy = 2 * time.Second
		c.Metrics.Window = 3 * time.Second
	})
	c := e.dial(t)
	if code, h := health(t, e); code != 200 || h.Status != "healthy" {
		t.Fatalf("start: %d %+v", code, h)
	}
	e.publish(t, 20, 500*time.Millisecond)
	receive(t, c, 20)
	delivered(t, e, 20)
	code, h := health(t, e)
	if code != 200 || h.Status != "degraded" || h.Performance.AvgLatency < 500 || !hasReason(h, "latency") {
		t.Fatalf("after 500ms deliveries: %d %+v", code, h)
	}
	if ready(t, e) != 200 {
		t.Fatal("degraded must stay ready")
	}
	e.publish(t, 20, 10*time.Second)
	receive(t, c, 20)
	delivered(t, e, 40)
	code, h = health(t, e)
	if code != 503 || h.Status != "unhealthy" || !hasReason(h, "latency") {
		t.Fatalf("after 10s deliveries: %d %+v", code, h)
	}
	if ready(t, e) != 200 {
		t.Fatal("a latency figure must not make the node unready")
	}
	// Once the slow deliveries leave the window, fresh ones are healthy.
	wstest.Eventually(t, 10*time.Second, "recovery", func() bool {
		e.publish(t, 1, 0)
		receive(t, c, 1)
		code, h = health(t, e)
		return code == 200 && h.Status == "healthy"
	})
}

// delivered waits until the writers have recorded n deliveries (a client
// may read a frame before its writer has accounted for it).
func delivered(t testing.TB, e *env, n uint64) {
	t.Helper()
	wait5(t, "deliveries recorded", func() bool {
		var st observe.Stats
		getJSON(t, e.url("/api/websocket/stats"), &st)
		return st.Pool.TotalMessagesSent >= n && e.srv.LatencyBuckets().Count >= n
	})
}

func hasReason(h observe.HealthStatus, word string) bool {
	for _, r := range h.Reasons {
		if strings.Contains(r, word) {
			return true
		}
	}
	return false
}

// TestHealthFollowsMemoryLevel uses the memory monitor hook: elevated is
// degraded, critical unhealthy.
func TestHealthFollowsMemoryLevel(t *testing.T) {
	e := start(t, nil)
	var level atomic.Value
	level.Store(observe.MemoryNormal)
	e.srv.SetMemoryLevel(func() string { return level.Load().(string) })
	tests := []struct {
		level, status string
		code          int
		prom          float64
	}{
		{observe.MemoryNormal, "healthy", 200, 0},
		{observe.MemoryElevated, "degraded", 200, 1},
		{observe.MemoryCritical, "unhealthy", 503, 2},
		{observe.MemoryNormal, "healthy", 200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			level.Store(tt.level)
			code, h := health(t, e)
			if code != tt.code || h.Status != tt.status || h.Performance.MemoryLevel != tt.level {
				t.Fatalf("%d %+v", code, h)
			}
			var m observe.Metrics
			getJSON(t, e.url("/api/websocket/metrics"), &m)
			if m.Memory.Level != tt.level {
				t.Fatalf("metrics memory level %q", m.Memory.Level)
			}
			if v, _ := value(scrape(t, e.url("/metrics")), "wsproxy_memory_level"); v != tt.prom {
				t.Fatalf("wsproxy_memory_level %v", v)
			}
		})
	}
}

// downSource is a source that cannot reach its transport.
type downSource struct{ at int64 }

func (downSource) Name() string { return "redis" }
func (downSource) Run(ctx context.Context, _ dataflow.Sink) error {
	<-ctx.Done()
	return nil
}
func (d downSource) Stats() dataflow.SourceStatus {
	return dataflow.SourceStatus{Name: "redis", Type: "redis", LastError: "dial tcp 127.0.0.1:1: connection refused", LastErrorAt: d.at}
}

func TestHealthDegradedWhileSourceDown(t *testing.T) {
	e := start(t, nil, downSource{at: time.Now().UnixMilli()})
	code, h := health(t, e)
	if code != 200 || h.Status != "degraded" || !hasReason(h, "source redis down") ||
		h.LastError == nil || !strings.Contains(h.LastError.Message, "connection refused") {
		t.Fatalf("%d %+v", code, h)
	}
	mfs := scrape(t, e.url("/metrics"))
	if v, ok := value(mfs, "wsproxy_source_up", "source", "redis"); !ok || v != 0 {
		t.Fatalf("source_up{redis} = %v %v", v, ok)
	}
	if v, _ := value(mfs, "wsproxy_source_up", "source", "test"); v != 1 {
		t.Fatalf("source_up{test} = %v", v)
	}
	if v, _ := value(mfs, "wsproxy_health_status"); v != 1 {
		t.Fatalf("health_status = %v", v)
	}
}

// TestSeparateAdminListener: with admin.listen the operator endpoints live
// on their own address; the WebSocket listener keeps /ws and the legacy
// status only.
func TestSeparateAdminListener(t *testing.T) {
	srv, err := proxy.New(config.Config{}, zerolog.Nop(), dataflow.NewInProcess("test"))
	if err != nil {
		t.Fatal(err)
	}
	api := admin.New(srv, srv.Config().Admin, zerolog.Nop())
	api.RegisterLegacy(srv)
	adminAddr, err := api.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = api.Shutdown(ctx)
	})
	main, adm := "http://"+ln.Addr().String(), "http://"+adminAddr.String()
	c := wstest.Dial(t, "ws://"+ln.Addr().String()+"/ws")
	c.NextOfType(t, "welcome", wait)
	for _, p := range []string{"/api/websocket/stats", "/api/websocket/health", "/api/websocket/metrics", "/api/websocket/connections", "/metrics", "/livez", "/readyz"} {
		if code := status(t, main+p); code != 404 {
			t.Fatalf("main listener serves %s: %d", p, code)
		}
		if code := status(t, adm+p); code != 200 {
			t.Fatalf("admin listener %s: %d", p, code)
		}
	}
	var ls map[string]any
	if code := getJSON(t, main+"/api/websocket/status", &ls); code != 200 || ls["clients"].(float64) != 1 {
		t.Fatalf("legacy status on main: %d %v", code, ls)
	}
	if code := status(t, adm+"/ws"); code != 404 {
		t.Fatalf("admin listener serves /ws: %d", code)
	}
	var st proxy.DrainStatus
	if code := call(t, http.MethodPost, adm+"/api/websocket/drain?window=0s", "", "", &st); code != 200 || st.Connections != 1 {
		t.Fatalf("drain on admin listener: %d %+v", code, st)
	}
	c.WaitClose(t, wait)
}

func status(t testing.TB, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
