package legacy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/tools/legacy"
)

const wait = 5 * time.Second

type harness struct {
	srv  *legacy.Server
	in   *dataflow.InProcess
	addr string
}

func start(t testing.TB, cfg legacy.Config) *harness {
	t.Helper()
	in := dataflow.NewInProcess("test")
	srv, err := legacy.New(cfg, zerolog.Nop(), in)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	wstest.Eventually(t, wait, "source attached", func() bool { return in.Status().Connected })
	return &harness{srv: srv, in: in, addr: ln.Addr().String()}
}

func (h *harness) dial(t testing.TB) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, "ws://"+h.addr+"/ws")
	if m := c.Next(t, wait); m.Type != "welcome" || m.Str("payload", "connectionId") == "" {
		t.Fatalf("first frame = %s, want welcome", m.Raw)
	}
	return c
}

func (h *harness) publish(t testing.TB, exchange, typ, symbol string, ts int64) {
	t.Helper()
	md := dataflow.MarketData{Exchange: exchange, Type: typ, Symbol: symbol, Timestamp: ts,
		Data: []byte(fmt.Sprintf(`{"seq": %d}`, ts))}
	if err := h.in.Output(context.Background(), md); err != nil {
		t.Fatal(err)
	}
}

// TestReplies pins the deployed legacy server's (A's) reply shapes byte for
// byte (timestamps aside); "" means no reply at all.
func TestReplies(t *testing.T) {
	h := start(t, legacy.Config{})
	c := h.dial(t)
	tests := []struct {
		name string
		send string
		want string // regexp; "" for silence
	}{
		{"ping", `{"type":"ping","timestamp":"2024-08-09T08:00:00.000Z"}`, `^\{"type":"pong","timestamp":\d+\}$`},
		{"channel subscribe", `{"type":"subscribe","payload":{"channel":"marketData"}}`, `^\{"type":"subscribed","payload":\{"channel":"marketData"\},"timestamp":\d+\}$`},
		{"channel unsubscribe", `{"type":"unsubscribe","payload":{"channel":"marketData"}}`, `^\{"type":"unsubscribed","payload":\{"channel":"marketData"\},"timestamp":\d+\}$`},
		{"any channel", `{"type":"subscribe","payload":{"channel":"x"}}`, `^\{"type":"subscribed","payload":\{"channel":"x"\},"timestamp":\d+\}$`},
		{"filter subscribe is ignored", `{"type":"subscribe","payload":{"exchange":["binance"]}}`, ""},
		{"filter unsubscribe is ignored", `{"type":"unsubscribe","payload":{"filterId":"f1"}}`, ""},
		{"stats", `{"type":"getStats"}`, `^\{"type":"stats","payload":\{"connections":\{"total":1,"active":1,"avgDuration":[0-9.]+\},"subscriptions":\{"total":1,"channels":\["x"\]\},"adapters":\[\],"server":\{"uptime":[0-9.e-]+,"memory":\{"rss":\d+,"heapTotal":\d+,"heapUsed":\d+,"external":0,"arrayBuffers":0\},"timestamp":\d+\}\},"timestamp":\d+\}$`},
		{"not JSON", `not json`, `^\{"type":"error","payload":\{"message":"Invalid message format"\},"timestamp":\d+\}$`},
		{"null", `null`, `^\{"type":"error","payload":\{"message":"Invalid message format"\},"timestamp":\d+\}$`},
		{"unknown type", `{"type":"nope"}`, ""},
		{"empty object", `{}`, ""},
		{"subscribe without payload", `{"type":"subscribe"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(t, tc.send)
			c.Send(t, `{"type":"ping","probe":true}`)
			m := c.Next(t, wait)
			if tc.want == "" {
				if m.Type != "pong" {
					t.Fatalf("reply %s, want none", m.Raw)
				}
				return
			}
			if !regexp.MustCompile(tc.want).Match(m.Raw) {
				t.Fatalf("reply %s, want %s", m.Raw, tc.want)
			}
			if p := c.Next(t, wait); p.Type != "pong" {
				t.Fatalf("second reply %s, want the probe's pong", p.Raw)
			}
		})
	}
}

// TestBroadcastToEveryClient: every client receives every data message in
// the legacy envelope, one message per frame, whatever it subscribed to.
func TestBroadcastToEveryClient(t *testing.T) {
	h := start(t, legacy.Config{})
	silent := h.dial(t)
	channel := h.dial(t)
	channel.Send(t, `{"type":"subscribe","payload":{"channel":"marketData"}}`)
	channel.NextOfType(t, "subscribed", wait)
	filtered := h.dial(t)
	filtered.Send(t, `{"type":"subscribe","payload":{"exchange":["binance"],"dataTypes":["ticker"]}}`)
	filtered.Send(t, `{"type":"ping"}`)
	filtered.NextOfType(t, "pong", wait)

	const n = 200
	for i := 1; i <= n; i++ {
		h.publish(t, "kraken", "trade", "BTC/USD", int64(i))
	}
	envelope := regexp.MustCompile(`^\{"type":"trade","payload":\{"type":"trade","exchange":"kraken","symbol":"BTC/USD","data":\{"seq": (\d+)\},"timestamp":(\d+)\},"timestamp":\d+\}$`)
	for name, c := range map[string]*wstest.Client{"silent": silent, "channel": channel, "filtered": filtered} {
		for i := 1; i <= n; i++ {
			m := c.Next(t, wait)
			sm := envelope.FindSubmatch(m.Raw)
			if sm == nil || string(sm[1]) != fmt.Sprint(i) || string(sm[2]) != fmt.Sprint(i) {
				t.Fatalf("%s: frame %d = %s", name, i, m.Raw)
			}
		}
	}
	if st := h.srv.Stats(); st.Broadcast != n || st.Clients != 3 || st.ClientDropped != 0 || st.InputDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatusEndpoint(t *testing.T) {
	h := start(t, legacy.Config{})
	h.dial(t)
	status, body, err := fasthttp.Get(nil, "http://"+h.addr+"/api/websocket/status")
	if err != nil || status != 200 {
		t.Fatalf("status %d %v", status, err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(h.addr)
	if got["status"] != "available" || fmt.Sprint(got["port"]) != port || got["clients"] != 1.0 || got["endpoint"] != "/ws" {
		t.Fatalf("status body %s", body)
	}
}

func TestHandleRegistersRoute(t *testing.T) {
	in := dataflow.NewInProcess("test")
	srv, err := legacy.New(legacy.Config{}, zerolog.Nop(), in)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("/ingest", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ingested") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	for path, want := range map[string]int{"/ingest": 200, "/other": 404} {
		status, body, err := fasthttp.Get(nil, "http://"+ln.Addr().String()+path)
		if err != nil || status != want || (want == 200 && string(body) != "ingested") {
			t.Fatalf("GET %s: %d %q %v", path, status, body, err)
		}
	}
}

func TestShutdownCloses1001(t *testing.T) {
	h := start(t, legacy.Config{})
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cl, _ := c.WaitClose(t, wait)
	if cl.Code != websocket.CloseGoingAway || cl.Reason != "Server shutting down" {
		t.Fatalf("close %+v", cl)
	}
}

// TestInputOverflowCounted: a full input queue drops and counts.
func TestInputOverflowCounted(t *testing.T) {
	srv, err := legacy.New(legacy.Config{InputQueue: 1}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	md := &dataflow.MarketData{Exchange: "e", Symbol: "s", Type: "trade", Timestamp: 1, Data: []byte(`{}`)}
	if !srv.Deliver(md) || srv.Deliver(md) {
		t.Fatal("want the first delivery queued and the second refused")
	}
	if st := srv.Stats(); st.InputDropped != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  legacy.Config
		ok   bool
	}{
		{"defaults", legacy.Config{}, true},
		{"negative client queue", legacy.Config{ClientQueue: -1}, false},
		{"negative input queue", legacy.Config{InputQueue: -1}, false},
		{"negative write timeout", legacy.Config{WriteTimeout: -time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := legacy.New(tc.cfg, zerolog.Nop())
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
