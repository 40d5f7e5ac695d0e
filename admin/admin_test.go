package admin_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"wsproxy/admin"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/proxy"
)

func start(t *testing.T) (*proxy.Server, *dataflow.InProcess, string) {
	t.Helper()
	in := dataflow.NewInProcess("test")
	srv, err := proxy.New(proxy.Config{}, zerolog.Nop(), in)
	if err != nil {
		t.Fatal(err)
	}
	admin.New(srv).Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	wstest.Eventually(t, 5*time.Second, "source", func() bool { return in.Status().Connected })
	return srv, in, ln.Addr().String()
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: content type %q", url, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

func TestStatsCountRealTraffic(t *testing.T) {
	_, in, addr := start(t)
	c := wstest.Dial(t, "ws://"+addr+"/ws")
	c.NextOfType(t, "welcome", 5*time.Second)
	const n = 25
	for i := 0; i < n; i++ {
		md := dataflow.MarketData{Exchange: "binance", Symbol: "BTC/USDT", Type: "trade", Timestamp: int64(i + 1), Data: []byte(`{}`)}
		if err := in.Output(context.Background(), md); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		c.NextOfType(t, "trade", 5*time.Second)
	}
	var st proxy.Stats
	wstest.Eventually(t, 5*time.Second, "stats settle", func() bool {
		getJSON(t, "http://"+addr+"/api/websocket/stats", &st)
		return st.Pool.TotalMessagesSent == n
	})
	if st.Connection.MessagesForwarded != n || st.Connection.ActiveConnections != 1 || st.Health.Status != "healthy" {
		t.Fatalf("stats = %+v", st)
	}
	var h proxy.HealthStatus
	if code := getJSON(t, "http://"+addr+"/api/websocket/health", &h); code != 200 || h.Status != "healthy" || h.Connections != 1 {
		t.Fatalf("health %d %+v", code, h)
	}
	var ls map[string]any
	getJSON(t, "http://"+addr+"/api/websocket/status", &ls)
	_, port, _ := net.SplitHostPort(addr)
	if ls["status"] != "available" || ls["endpoint"] != "/ws" || ls["clients"].(float64) != 1 || jsonPort(ls["port"]) != port {
		t.Fatalf("legacy status = %v", ls)
	}
}

func jsonPort(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestMethodNotAllowed(t *testing.T) {
	_, _, addr := start(t)
	resp, err := http.Post("http://"+addr+"/api/websocket/stats", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST stats = %d", resp.StatusCode)
	}
}
