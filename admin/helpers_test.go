package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"wsproxy/admin"
	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/proxytest"
	"wsproxy/internal/wstest"
	"wsproxy/proxy"
)

const wait = 5 * time.Second

// env is a proxy with the admin API on its listener, fed in-process.
type env struct {
	srv  *proxy.Server
	api  *admin.API
	in   *dataflow.InProcess
	addr string
}

func start(t testing.TB, mut func(*config.Config), sources ...dataflow.Source) *env {
	t.Helper()
	cfg := config.Config{}
	if mut != nil {
		mut(&cfg)
	}
	var api *admin.API
	n := proxytest.Start(t, cfg, zerolog.Nop(), func(srv *proxy.Server) {
		api = admin.New(srv, srv.Config().Admin, zerolog.Nop())
		api.Register(srv)
	}, sources...)
	return &env{srv: n.Srv, api: api, in: n.In, addr: n.Addr}
}

func (e *env) url(path string) string { return "http://" + e.addr + path }

// dial connects a WebSocket client and consumes its welcome.
func (e *env) dial(t testing.TB) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, "ws://"+e.addr+"/ws")
	c.NextOfType(t, "welcome", wait)
	return c
}

// publish forwards n trades; age, when > 0, back-dates their receivedAt.
func (e *env) publish(t testing.TB, n int, age time.Duration) {
	t.Helper()
	for i := 0; i < n; i++ {
		md := dataflow.MarketData{Exchange: "binance", Symbol: "BTC/USDT", Type: "trade", Timestamp: int64(i + 1),
			Data: []byte(fmt.Sprintf(`{"price":"%d"}`, i))}
		if age > 0 {
			md.ReceivedAt = time.Now().Add(-age).UnixMilli()
		}
		if err := e.in.Output(context.Background(), md); err != nil {
			t.Fatal(err)
		}
	}
}

// receive waits for n data messages of type trade on c.
func receive(t testing.TB, c *wstest.Client, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		c.NextOfType(t, "trade", wait)
	}
}

// call performs an HTTP request and decodes a JSON answer into v (if not
// nil); it returns the status code.
func call(t testing.TB, method, url, token, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s: content type %q, body %s", method, url, ct, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	return call(t, http.MethodGet, url, "", "", v)
}

// near reports whether got is within frac of want.
func near(got, want, frac float64) bool {
	d := got - want
	if d < 0 {
		d = -d
	}
	return d <= frac*want
}

// big is a trade whose frame exceeds 4 KiB.
func big(i int) dataflow.MarketData {
	return dataflow.MarketData{Exchange: "binance", Symbol: "ETH/USDT", Type: "trade", Timestamp: int64(i + 1),
		Data: []byte(`{"pad":"` + strings.Repeat("x", 5000) + `"}`)}
}
