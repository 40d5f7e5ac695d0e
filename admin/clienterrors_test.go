package admin_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"

	"wsproxy/admin"
	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
	"wsproxy/proxy"
)

// badFrames are hostile client frames of every kind a session classifies,
// with the client_errors_total reason each one counts under.
var badFrames = []struct {
	frame, reason string
}{
	{`not json`, "invalid_message"},
	{`null`, "invalid_message"},
	{`[]`, "invalid_message"},
	{`"str"`, "invalid_message"},
	{`{}`, "invalid_message"},
	{`{"type":5}`, "invalid_message"},
	{`{"type":"Ping"}`, "unknown_type"},
	{`{"type":"bogus"}`, "unknown_type"},
	{`{"type":"subscribe","payload":5}`, "invalid_filter"},
	{`{"type":"subscribe","payload":{"exchange":"binance"}}`, "invalid_filter"},
	{manySymbols(), "limit_exceeded"},
}

// manySymbols is a subscribe over limits.max_symbols (default 100).
func manySymbols() string {
	s := make([]string, 101)
	for i := range s {
		s[i] = `"S` + strconv.Itoa(i) + `"`
	}
	return `{"type":"subscribe","payload":{"symbols":[` + strings.Join(s, ",") + `]}}`
}

// clientErrors reads the client error counters of /api/websocket/metrics.
func clientErrors(t testing.TB, e *env) map[string]uint64 {
	t.Helper()
	var m observe.Metrics
	getJSON(t, e.url("/api/websocket/metrics"), &m)
	return m.ClientErrors
}

// waitClientErrors waits until every reason of want is counted exactly.
func waitClientErrors(t testing.TB, e *env, want map[string]uint64) {
	t.Helper()
	var got map[string]uint64
	counted := func() bool {
		got = clientErrors(t, e)
		for r, n := range want {
			if got[r] < n {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(wait); !counted() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	for r, n := range want {
		if got[r] != n {
			t.Fatalf("client errors %s: %d, want %d (%v)", r, got[r], n, got)
		}
	}
}

// assertNodeFine checks the node is healthy with no error rate and ready.
func assertNodeFine(t testing.TB, e *env, when string) {
	t.Helper()
	code, h := health(t, e)
	if code != 200 || h.Status != "healthy" || h.Performance.ErrorRate != 0 {
		t.Fatalf("%s: health %d %+v", when, code, h)
	}
	if code := ready(t, e); code != 200 {
		t.Fatalf("%s: readyz %d", when, code)
	}
}

// TestFortyNonJSONFramesKeepNodeHealthy is the attack of the issue with the
// default configuration: one client sends 40 non-JSON frames (inside the
// default message rate and burst) to a node that has forwarded enough
// messages for the error rate to be judged. It used to turn the node
// unhealthy and /readyz 503.
func TestFortyNonJSONFramesKeepNodeHealthy(t *testing.T) {
	e := start(t, nil)
	e.publish(t, 200, 0)
	forwarded(t, e, 200)
	c := e.dial(t)
	assertNodeFine(t, e, "before")
	for i := 0; i < 40; i++ {
		c.Send(t, `not json`)
	}
	waitClientErrors(t, e, map[string]uint64{"invalid_message": 40})
	assertNodeFine(t, e, "after 40 non-JSON frames")
	if v, _ := value(scrape(t, e.url("/metrics")), "wsproxy_client_errors_total", "reason", "invalid_message"); v != 40 {
		t.Fatalf(`client_errors_total{reason="invalid_message"} %v`, v)
	}
	var ci admin.ConnInfo
	page := admin.ConnectionPage{}
	getJSON(t, e.url("/api/websocket/connections"), &page)
	ci = page.Connections[0]
	if ci.Errors != 40 {
		t.Fatalf("per-connection errors %d, want 40", ci.Errors)
	}
	// The client is kept (40 is inside the default budget of 60 a minute).
	c.Send(t, `{"type":"ping"}`)
	c.NextOfType(t, "pong", wait)
}

// TestClientErrorsNeverMoveHealth sends every kind of bad frame, over the
// message rate too, and checks each is counted under its reason while
// health stays healthy with no error rate and the node ready.
func TestClientErrorsNeverMoveHealth(t *testing.T) {
	const rounds = 30
	e := start(t, func(c *config.Config) {
		c.Metrics.Window = time.Minute
		c.Limits.MessageRate, c.Limits.MessageBurst = 1000, 2*rounds*len(badFrames)
		c.Limits.MaxBadFramesPerMinute = 100000
		c.Health.LatencyDegraded, c.Health.LatencyUnhealthy = time.Hour, time.Hour // not under test
	})
	e.publish(t, 200, 0)
	forwarded(t, e, 200)
	c := e.dial(t)
	want := map[string]uint64{}
	for i := 0; i < rounds; i++ {
		for _, b := range badFrames {
			c.Send(t, b.frame)
			want[b.reason]++
		}
	}
	waitClientErrors(t, e, want)
	// A binary frame that is not JSON is a bad frame too (counted as
	// binary_frame, or as invalid_message where binary frames are read as
	// text).
	if err := c.Conn.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0xfe, 'x'}); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, wait, "binary frame counted", func() bool {
		got := clientErrors(t, e)
		return got["binary_frame"]+got["invalid_message"] == want["invalid_message"]+1
	})
	assertNodeFine(t, e, "after bad frames")

	// Rate-limit hits are client errors too.
	r := e.dial(t)
	for i := 0; i < 3*rounds*len(badFrames); i++ {
		r.Send(t, `{"type":"ping"}`)
	}
	wstest.Eventually(t, wait, "rate-limit hits", func() bool { return clientErrors(t, e)["rate_limited"] > 0 })
	assertNodeFine(t, e, "after rate-limit hits")

	mfs := scrape(t, e.url("/metrics"))
	want["invalid_message"] = clientErrors(t, e)["invalid_message"]
	for reason, n := range want {
		if v, _ := value(mfs, "wsproxy_client_errors_total", "reason", reason); v != float64(n) {
			t.Fatalf(`client_errors_total{reason=%q} %v, want %d`, reason, v, n)
		}
	}
	if v, _ := value(mfs, "wsproxy_health_status"); v != 0 {
		t.Fatalf("health_status %v", v)
	}
}

// TestRefusedUpgradesAreClientErrors: auth and origin refusals are counted
// as client errors and leave the node healthy.
func TestRefusedUpgradesAreClientErrors(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Auth = config.AuthConfig{Mode: config.AuthToken, Tokens: []string{"good"}}
		c.AllowedOrigins = []string{"https://app.example.com"}
	})
	e.publish(t, 200, 0)
	forwarded(t, e, 200)
	for i := 0; i < 30; i++ {
		h := http.Header{"Origin": {"https://evil.example.net"}}
		if _, resp, err := websocket.DefaultDialer.Dial("ws://"+e.addr+"/ws?token=good", h); err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("bad origin: %v %v", err, resp)
		}
		if _, resp, err := websocket.DefaultDialer.Dial("ws://"+e.addr+"/ws?token=bad", nil); err == nil || resp == nil || resp.StatusCode != 401 {
			t.Fatalf("bad token: %v %v", err, resp)
		}
	}
	waitClientErrors(t, e, map[string]uint64{"origin": 30, "auth": 30})
	assertNodeFine(t, e, "after refused upgrades")
}

// TestErrorBudgetClosesAbusiveClient: a client over
// limits.max_bad_frames_per_minute is closed with 1008 and counted; the
// frames up to the budget are answered as usual.
func TestErrorBudgetClosesAbusiveClient(t *testing.T) {
	const budget = 10
	e := start(t, func(c *config.Config) { c.Limits.MaxBadFramesPerMinute = budget })
	c := e.dial(t)
	for i := 0; i < budget; i++ {
		c.Send(t, `{"type":"bogus"}`)
	}
	waitClientErrors(t, e, map[string]uint64{"unknown_type": budget})
	c.Send(t, `{"type":"ping"}`)
	c.NextOfType(t, "pong", wait) // still served at the budget
	c.Send(t, `not json`)
	cl, _ := c.WaitClose(t, wait)
	if cl.Code != websocket.ClosePolicyViolation || cl.Reason != "Too many invalid messages" {
		t.Fatalf("close %+v, want 1008 Too many invalid messages", cl)
	}
	if n := e.srv.ErrorBudgetCloses(); n != 1 {
		t.Fatalf("error budget closes %d", n)
	}
	if v, _ := value(scrape(t, e.url("/metrics")), "wsproxy_error_budget_closes_total"); v != 1 {
		t.Fatalf("error_budget_closes_total %v", v)
	}
	var m observe.Metrics
	getJSON(t, e.url("/api/websocket/metrics"), &m)
	if m.ErrorBudgetCloses != 1 || m.ClientErrors["invalid_message"] != 1 {
		t.Fatalf("metrics %+v", m)
	}
	// Other clients are not affected.
	o := e.dial(t)
	o.Send(t, `{"type":"ping"}`)
	o.NextOfType(t, "pong", wait)
	assertNodeFine(t, e, "after the close")
}

// TestErrorBudgetOff: a negative limits.max_bad_frames_per_minute closes
// nobody; the frames are still counted.
func TestErrorBudgetOff(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Limits.MaxBadFramesPerMinute = -1 })
	c := e.dial(t)
	for i := 0; i < 90; i++ { // inside the default message burst (100)
		c.Send(t, `not json`)
	}
	waitClientErrors(t, e, map[string]uint64{"invalid_message": 90})
	c.Send(t, `{"type":"ping"}`)
	c.NextOfType(t, "pong", wait)
	if n := e.srv.ErrorBudgetCloses(); n != 0 {
		t.Fatalf("error budget closes %d", n)
	}
}

// TestHealthFollowsServerErrors makes the dispatcher drop messages (a queue
// of one, fed faster than it dispatches): drops are server-side failures and
// turn health degraded or unhealthy as the rate says, but an error-rate
// figure never makes the node unready.
func TestHealthFollowsServerErrors(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.DispatchQueue = 1
		c.Metrics.Window = time.Minute
		c.Health.LatencyDegraded, c.Health.LatencyUnhealthy = time.Hour, time.Hour // not under test
	})
	e.dial(t)
	var dropped int
	var h observe.HealthStatus
	wstest.Eventually(t, 20*time.Second, "dispatcher drops past 1%", func() bool {
		for i := 0; i < 2000; i++ {
			md := dataflow.MarketData{Exchange: "binance", Symbol: "BTC/USDT", Type: "trade", Timestamp: int64(i + 1), Data: []byte(`{}`)}
			if err := e.in.Output(context.Background(), md); errors.Is(err, dataflow.ErrBackpressure) {
				dropped++
			}
		}
		_, h = health(t, e)
		return hasReason(h, "server error rate")
	})
	want := map[bool]string{true: "unhealthy", false: "degraded"}[h.Performance.ErrorRate > 0.05]
	if dropped == 0 || h.Status != want || h.Performance.ErrorRate <= 0.01 {
		t.Fatalf("dropped %d, health %+v", dropped, h)
	}
	if code := ready(t, e); code != 200 {
		t.Fatalf("readyz %d: an error rate must not make the node unready", code)
	}
	var st observe.Stats
	getJSON(t, e.url("/api/websocket/stats"), &st)
	if v, _ := value(scrape(t, e.url("/metrics")), "wsproxy_server_errors_total", "kind", "dispatch_dropped"); v < float64(dropped) || st.Dataflow.Dropped < uint64(dropped) {
		t.Fatalf("server_errors_total{kind=dispatch_dropped} %v, stats %d, seen %d", v, st.Dataflow.Dropped, dropped)
	}
	if clientErrors(t, e)["invalid_message"] != 0 {
		t.Fatal("server errors counted as client errors")
	}
}

// TestHealthFollowsDecodeErrors: messages a source cannot use have their
// own rate and thresholds (health.decode_error_rate_*), apart from the
// server error rate.
func TestHealthFollowsDecodeErrors(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Metrics.Window = time.Minute
		c.Health.LatencyDegraded, c.Health.LatencyUnhealthy = time.Hour, time.Hour // not under test
	})
	reject := func(n int) {
		for i := 0; i < n; i++ {
			if err := e.in.Output(context.Background(), dataflow.MarketData{Exchange: "binance", Symbol: strings.Repeat("S", dataflow.MaxFieldLen+1), Type: "trade", Timestamp: 1, Data: []byte(`{}`)}); !errors.Is(err, dataflow.ErrInvalid) {
				t.Fatalf("invalid message accepted: %v", err)
			}
		}
	}
	e.publish(t, 190, 0)
	forwarded(t, e, 190)
	reject(10) // 10 / 200 = 5 %: above 1 %, below 25 %
	code, h := health(t, e)
	if code != 200 || h.Status != "degraded" || !hasReason(h, "source decode error rate") || h.Performance.DecodeErrorRate != 0.05 || h.Performance.ErrorRate != 0 {
		t.Fatalf("5%% decode errors: %d %+v", code, h)
	}
	reject(100) // 110 / 300
	code, h = health(t, e)
	if code != 503 || h.Status != "unhealthy" || !hasReason(h, "source decode error rate") {
		t.Fatalf("37%% decode errors: %d %+v", code, h)
	}
	if code := ready(t, e); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	var m observe.Metrics
	getJSON(t, e.url("/api/websocket/metrics"), &m)
	if !near(m.Throughput.DecodeErrorRate, 110.0/300, 1e-9) || m.Throughput.ErrorRate != 0 {
		t.Fatalf("metrics %+v", m.Throughput)
	}
}

// TestReadinessFollowsNodeOnly: /readyz is 503 for memory critical and for
// no source connected (unless health.ready_requires_source is off), and
// 200 whatever health says otherwise.
func TestReadinessFollowsNodeOnly(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		e := start(t, nil)
		for _, tt := range []struct {
			level string
			code  int
		}{{observe.MemoryNormal, 200}, {observe.MemoryElevated, 200}, {observe.MemoryCritical, 503}, {observe.MemoryNormal, 200}} {
			e.srv.SetMemoryLevel(func() string { return tt.level })
			var p struct {
				Status  string   `json:"status"`
				Reasons []string `json:"reasons"`
			}
			if code := getJSON(t, e.url("/readyz"), &p); code != tt.code || (tt.code == 503 && (len(p.Reasons) != 1 || p.Reasons[0] != "memory level critical")) {
				t.Fatalf("memory %s: readyz %d %+v", tt.level, code, p)
			}
		}
	})
	for _, requires := range []bool{true, false} {
		name := map[bool]string{true: "source down", false: "source down, not required"}[requires]
		t.Run(name, func(t *testing.T) {
			cfg := config.Config{}
			cfg.Health.ReadyRequiresSource = &requires
			cfg.Health.SourceDownUnhealthyAfter = 10 * time.Millisecond
			srv, err := proxy.New(cfg, zerolog.Nop(), downSource{at: time.Now().Add(-time.Minute).UnixMilli()})
			if err != nil {
				t.Fatal(err)
			}
			admin.New(srv, srv.Config().Admin, zerolog.Nop()).Register(srv)
			e := &env{srv: srv, addr: serve(t, srv)}
			wstest.Eventually(t, wait, "unhealthy", func() bool {
				code, h := health(t, e)
				return code == 503 && hasReason(h, "longer than")
			})
			want := map[bool]int{true: 503, false: 200}[requires]
			if code := ready(t, e); code != want {
				t.Fatalf("readyz %d, want %d", code, want)
			}
		})
	}
}

// serve runs srv on a loopback port until the test ends and returns its
// address.
func serve(t testing.TB, srv *proxy.Server) string {
	t.Helper()
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
	return ln.Addr().String()
}

// forwarded waits until the dispatcher has forwarded n messages.
func forwarded(t testing.TB, e *env, n uint64) {
	t.Helper()
	wait5(t, "messages forwarded", func() bool {
		var st observe.Stats
		getJSON(t, e.url("/api/websocket/stats"), &st)
		return st.Connection.MessagesForwarded >= n
	})
}

// TestClientResetsAreClientErrors: clients that reset their connection
// while data is written to them make socket writes fail; those failures are
// counted as client resets and stay out of the health error rate.
func TestClientResetsAreClientErrors(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Metrics.Window = time.Minute
		c.Health.LatencyDegraded, c.Health.LatencyUnhealthy = time.Hour, time.Hour // not under test
	})
	stop := make(chan struct{})
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = e.in.Output(context.Background(), dataflow.MarketData{Exchange: "binance", Symbol: "BTC/USDT", Type: "trade",
				Timestamp: int64(i + 1), Data: []byte(`{"pad":"` + strings.Repeat("x", 2000) + `"}`)})
		}
	}()
	var once sync.Once
	halt := func() { once.Do(func() { close(stop); <-flooding }) }
	defer halt()
	var st observe.Stats
	wstest.Eventually(t, 20*time.Second, "a write failed on a reset connection", func() bool {
		for i := 0; i < 5; i++ {
			c, _, err := websocket.DefaultDialer.Dial("ws://"+e.addr+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.NetConn().(*net.TCPConn).SetLinger(0)
			_ = c.NetConn().Close()
		}
		getJSON(t, e.url("/api/websocket/stats"), &st)
		return st.Pool.ErrorConnections > 0
	})
	halt()
	// Writes already under way may still fail after the flood stops, and
	// the stats answer may be up to one refresh old: poll until the two
	// views agree, then check them.
	var ce map[string]uint64
	agree := func() bool {
		getJSON(t, e.url("/api/websocket/stats"), &st)
		ce = clientErrors(t, e)
		return ce["client_reset"]+ce["write_timeout"] == st.Pool.ErrorConnections
	}
	deadline := time.Now().Add(10 * time.Second)
	for !agree() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if st.Pool.ServerWriteErrors != 0 || ce["client_reset"]+ce["write_timeout"] != st.Pool.ErrorConnections {
		t.Fatalf("write failures %d, server %d, client errors %v", st.Pool.ErrorConnections, st.Pool.ServerWriteErrors, ce)
	}
	if st.Health.Status != "healthy" || st.Health.Performance.ErrorRate != 0 {
		t.Fatalf("health %+v", st.Health)
	}
}
