package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"wsproxy/admin"
	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/dataflow/sources"
	"wsproxy/internal/configtest"
	"wsproxy/internal/redistest"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
	"wsproxy/proxy"
)

// serve runs a server fed by sources, with the admin API and, when given,
// the ingest endpoint; it returns the server and its host:port.
func serve(t testing.TB, cfg config.Config, ingest *dataflow.Ingest, sources ...dataflow.Source) (*proxy.Server, string) {
	t.Helper()
	srv, err := proxy.New(cfg, zerolog.Nop(), sources...)
	if err != nil {
		t.Fatal(err)
	}
	if ingest != nil {
		srv.Handle(dataflow.IngestPath, ingest.Handler())
	}
	admin.New(srv, srv.Config().Admin, zerolog.Nop()).Register(srv)
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
	return srv, ln.Addr().String()
}

func httpDo(t testing.TB, method, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	req.SetBodyString(body)
	if err := fasthttp.DoTimeout(req, resp, wait); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

func mdJSON(exchange, typ, symbol string, seq int) string {
	return fmt.Sprintf(`{"exchange":%q,"symbol":%q,"type":%q,"timestamp":%d,"data":{"seq":%d}}`, exchange, symbol, typ, 1700000000000+seq, seq)
}

func sourceStatus(st observe.Stats, name string) dataflow.SourceStatus {
	for _, s := range st.Dataflow.Sources {
		if s.Name == name {
			return s
		}
	}
	return dataflow.SourceStatus{}
}

// TestRedisPubSubToWebSocketClient: a message published to Redis reaches a
// subscribed browser client; bad messages are counted in STATS.
func TestRedisPubSubToWebSocketClient(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t)
	src, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: addr, Pattern: prefix + "market-data-*"}))
	if err != nil {
		t.Fatal(err)
	}
	srv, host := serve(t, config.Config{}, nil, src)
	wstest.Eventually(t, wait, "subscribed to Redis", func() bool { return src.Stats().Connected })
	c := wstest.Dial(t, "ws://"+host+"/ws")
	c.NextOfType(t, "welcome", wait)
	c.Send(t, `{"type":"subscribe","payload":{"exchange":["binance"],"dataTypes":["trade"]}}`)
	c.NextOfType(t, "subscribed", wait)

	rdb := redistest.Client(t, addr)
	ctx := context.Background()
	for i := 1; i <= 20; i++ {
		rdb.Publish(ctx, prefix+"market-data-trade-binance", mdJSON("binance", "trade", "BTC/USDT", i))
		rdb.Publish(ctx, prefix+"market-data-trade-okx", mdJSON("okx", "trade", "BTC/USDT", i)) // filtered out
	}
	rdb.Publish(ctx, prefix+"market-data-trade-binance", `["not an object"]`)
	for i := 1; i <= 20; i++ {
		m := c.NextOfType(t, "trade", wait)
		if m.Str("payload", "exchange") != "binance" || m.Str("payload", "data", "seq") != fmt.Sprint(i) {
			t.Fatalf("message %d: %s", i, m.Raw)
		}
	}
	wstest.Eventually(t, wait, "rejection counted", func() bool {
		return sourceStatus(srv.Stats(), "redis-pubsub").Rejected == 1
	})
	// The same counters over the wire (getStats) and the admin API.
	c.Send(t, `{"type":"getStats"}`)
	st := c.NextOfType(t, "stats", wait)
	if !strings.Contains(string(st.Raw), `"name":"redis-pubsub"`) || !strings.Contains(string(st.Raw), `"rejected":1`) {
		t.Fatalf("getStats: %s", st.Raw)
	}
	code, body := httpDo(t, "GET", "http://"+host+"/api/websocket/stats", "")
	if code != 200 || !strings.Contains(string(body), `"received":40`) {
		t.Fatalf("admin stats %d: %s", code, body)
	}
}

// TestDroppedMessagesVisibleInStats: when the dispatcher queue is full the
// source keeps reading, and the drops show in the source's counters and in
// STATS dataflow.dropped.
func TestDroppedMessagesVisibleInStats(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t)
	src, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: addr, Pattern: prefix + "*"}))
	if err != nil {
		t.Fatal(err)
	}
	// A server that is built but never started: nothing drains its
	// dispatcher queue of one message.
	srv, err := proxy.New(config.Config{DispatchQueue: 1}, zerolog.Nop(), src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = src.Run(ctx, srv.Dispatcher()); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wstest.Eventually(t, wait, "subscribed", func() bool { return src.Stats().Connected })
	rdb := redistest.Client(t, addr)
	for i := 1; i <= 100; i++ {
		rdb.Publish(context.Background(), prefix+"x", mdJSON("b", "trade", "S", i))
	}
	wstest.Eventually(t, wait, "all read", func() bool { return src.Stats().Received == 100 })
	st := srv.Stats()
	if s := sourceStatus(st, "redis-pubsub"); s.Dropped != 99 || st.Dataflow.Dropped != 99 || st.Dataflow.Queued != 1 {
		t.Fatalf("source %+v, dataflow %+v", s, st.Dataflow)
	}
}

// TestIngestToWebSocketClient posts NDJSON through the real server.
func TestIngestToWebSocketClient(t *testing.T) {
	b, err := sources.Build(config.SourcesConfig{Ingest: configtest.Ingest(dataflow.IngestConfig{Enabled: true, Token: "tok"})})
	if err != nil {
		t.Fatal(err)
	}
	_, host := serve(t, config.Config{}, b.Ingest, b.All...)
	c := wstest.Dial(t, "ws://"+host+"/ws")
	c.NextOfType(t, "welcome", wait)
	url := "http://" + host + dataflow.IngestPath
	wstest.Eventually(t, wait, "ingest running", func() bool { return b.Ingest.Stats().Connected })
	body := mdJSON("binance", "trade", "BTC/USDT", 1) + "\n{bad}\n" + mdJSON("binance", "ticker", "ETH/USDT", 2) + "\n"
	if code, _ := httpDo(t, "POST", url, body); code != 401 {
		t.Fatalf("without token: %d", code)
	}
	code, resp := httpDo(t, "POST", url, body, "Authorization", "Bearer tok")
	var res dataflow.IngestResult
	if err := json.Unmarshal(resp, &res); err != nil || code != 200 || res.Accepted != 2 || res.Rejected != 1 || res.Errors[0].Line != 2 {
		t.Fatalf("%d %s (%v)", code, resp, err)
	}
	if m := c.Next(t, wait); m.Type != "trade" || m.Str("payload", "data", "seq") != "1" {
		t.Fatalf("first: %s", m.Raw)
	}
	if m := c.Next(t, wait); m.Type != "ticker" || m.Str("payload", "symbol") != "ETH/USDT" {
		t.Fatalf("second: %s", m.Raw)
	}
}

// TestSourceDownHealth: a disconnected source makes the node degraded with
// lastError at once, unhealthy (503) after
// health.source_down_unhealthy_after, and healthy again when it reconnects.
func TestSourceDownHealth(t *testing.T) {
	rs := redistest.Start(t)
	rs.Stop(t) // the source starts against a Redis that is down
	src, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: rs.Addr, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	const after = 700 * time.Millisecond
	started := time.Now()
	srv, host := serve(t, config.Config{Health: config.HealthConfig{SourceDownUnhealthyAfter: after}}, nil, src)
	health := func() (int, observe.HealthStatus) {
		code, body := httpDo(t, "GET", "http://"+host+"/api/websocket/health", "")
		var h observe.HealthStatus
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("health %s: %v", body, err)
		}
		return code, h
	}
	wstest.Eventually(t, wait, "lastError", func() bool { return srv.Stats().Health.LastError != nil })
	if code, h := health(); time.Since(started) < after && (code != 200 || h.Status != "degraded" ||
		!strings.HasPrefix(h.LastError.Message, "redis-pubsub: ") || h.LastError.Timestamp == 0) {
		t.Fatalf("early: %d %+v", code, h)
	}
	wstest.Eventually(t, wait, "unhealthy", func() bool { code, h := health(); return code == 503 && h.Status == "unhealthy" })
	if time.Since(started) < after {
		t.Fatalf("unhealthy after %s, before %s", time.Since(started), after)
	}
	rs.Restart(t)
	wstest.Eventually(t, wait, "healthy again", func() bool { code, h := health(); return code == 200 && h.Status == "healthy" })
}

// TestStreamsResumeToWebSocketClient: entries added while the proxy's
// connection is cut, and around a Redis restart, all reach a browser client,
// once each and in order.
func TestStreamsResumeToWebSocketClient(t *testing.T) {
	rs := redistest.Start(t)
	key := redistest.Prefix(t) + "market-data"
	src, err := dataflow.NewRedisStreams(configtest.Streams(dataflow.StreamConfig{Addr: rs.Addr, Keys: []string{key},
		Block: 200 * time.Millisecond, BackoffMin: 300 * time.Millisecond, BackoffMax: 600 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	_, host := serve(t, config.Config{}, nil, src)
	wstest.Eventually(t, wait, "streams connected", func() bool { return src.Stats().Connected })
	c := wstest.Dial(t, "ws://"+host+"/ws")
	c.NextOfType(t, "welcome", wait)

	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: 20, MinRetryBackoff: 20 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	seq := 0
	add := func(n int) {
		t.Helper()
		for range n {
			seq++
			if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: key,
				Values: []string{"data", mdJSON("binance", "trade", "BTC/USDT", seq)}}).Err(); err != nil {
				t.Fatalf("XADD %d: %v", seq, err)
			}
		}
	}
	add(20)
	before := src.Stats().LastErrorAt
	rs.KillClients(t, "normal") // network cut of the proxy's connection
	// On a busy machine the source may notice the cut and reconnect
	// between two polls: the recorded error says it noticed.
	wstest.Eventually(t, wait, "cut noticed", func() bool {
		st := src.Stats()
		return !st.Connected || st.LastErrorAt != before
	})
	add(20) // while the proxy waits to reconnect
	wstest.Eventually(t, wait, "reconnected", func() bool { return src.Stats().Connected })
	rs.Stop(t)
	wstest.Eventually(t, wait, "restart noticed", func() bool { return !src.Stats().Connected })
	rs.Restart(t)
	add(20) // before the proxy is back
	wstest.Eventually(t, wait, "reconnected after restart", func() bool { return src.Stats().Connected })
	add(20)
	for i := 1; i <= seq; i++ {
		m := c.Next(t, wait)
		if m.Str("payload", "data", "seq") != fmt.Sprint(i) {
			t.Fatalf("message %d is %s (gap, duplicate or reorder)", i, m.Raw)
		}
	}
	if extra, ok := c.TryNext(100 * time.Millisecond); ok {
		t.Fatalf("duplicate after the last entry: %s", extra.Raw)
	}
}
