package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/dataflow/sources"
	"wsproxy/internal/configtest"
	"wsproxy/internal/natstest"
	"wsproxy/internal/redistest"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
)

// natsSources builds the NATS and JetStream sources through the
// configuration keys and their environment overrides, as main does.
func natsSources(t testing.TB, env map[string]string) []dataflow.Source {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	b, err := sources.Build(cfg.Sources)
	if err != nil {
		t.Fatal(err)
	}
	return b.All
}

func metricsText(t testing.TB, host string) string {
	t.Helper()
	code, body := httpDo(t, "GET", "http://"+host+"/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return string(body)
}

// metric returns the value of the sample line starting with prefix.
func metric(text, prefix string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestNATSJetStreamAndRedisToWebSocketClient: core NATS, JetStream and Redis
// Pub/Sub feed one server side by side; a client receives from all three,
// malformed messages are counted per source, and every source shows in
// STATS and /metrics.
func TestNATSJetStreamAndRedisToWebSocketClient(t *testing.T) {
	ns := natstest.Start(t)
	js := ns.JetStream(t)
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: "MD", Subjects: []string{"jsmd.>"}, Storage: jetstream.FileStorage})
	srcs := natsSources(t, map[string]string{
		"WSPROXY_SOURCES_NATS_ENABLED":        "true",
		"WSPROXY_SOURCES_NATS_URL":            ns.URL,
		"WSPROXY_SOURCES_JETSTREAM_ENABLED":   "true",
		"WSPROXY_SOURCES_JETSTREAM_URL":       ns.URL,
		"WSPROXY_SOURCES_JETSTREAM_STREAM":    "MD",
		"WSPROXY_SOURCES_JETSTREAM_SUBJECTS":  "jsmd.trade.>",
		"WSPROXY_SOURCES_JETSTREAM_HEARTBEAT": "1s",
	})
	raddr := redistest.Addr(t)
	prefix := redistest.Prefix(t)
	rs, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: raddr, Pattern: prefix + "market-data-*"}))
	if err != nil {
		t.Fatal(err)
	}
	srcs = append(srcs, rs)
	srv, host := serve(t, config.Config{}, nil, srcs...)
	wstest.Eventually(t, wait, "all sources up", func() bool {
		for _, s := range srv.Stats().Dataflow.Sources {
			if !s.Connected {
				return false
			}
		}
		return len(srv.Stats().Dataflow.Sources) == 3
	})
	c := wstest.Dial(t, "ws://"+host+"/ws")
	c.NextOfType(t, "welcome", wait)
	c.Send(t, `{"type":"subscribe","payload":{"exchange":["binance","okx","kraken"],"dataTypes":["trade"]}}`)
	c.NextOfType(t, "subscribed", wait)

	nc := ns.Conn(t)
	rdb := redistest.Client(t, raddr)
	want := map[string][]string{}
	for i := 1; i <= 10; i++ {
		_ = nc.Publish("market-data.trade.binance", []byte(mdJSON("binance", "trade", "BTC/USDT", i)))
		_ = nc.Publish("market-data.ticker.binance", []byte(mdJSON("binance", "ticker", "BTC/USDT", i))) // filtered out
		natstest.Publish(t, js, "jsmd.trade.okx", fmt.Sprint(i), []byte(mdJSON("okx", "trade", "ETH/USDT", i)))
		natstest.Publish(t, js, "jsmd.ticker.okx", fmt.Sprint("t", i), []byte(mdJSON("okx", "trade", "ETH/USDT", 100+i))) // not in the stream filter
		rdb.Publish(context.Background(), prefix+"market-data-trade-kraken", mdJSON("kraken", "trade", "XBT/USD", i))
		for _, ex := range []string{"binance", "okx", "kraken"} {
			want[ex] = append(want[ex], fmt.Sprint(i))
		}
	}
	_ = nc.Publish("market-data.trade.binance", []byte(`["not an object"]`))
	natstest.Publish(t, js, "jsmd.trade.okx", "bad", []byte(`not json`))
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for range 30 {
		m := c.NextOfType(t, "trade", wait)
		ex := m.Str("payload", "exchange")
		got[ex] = append(got[ex], m.Str("payload", "data", "seq"))
	}
	for ex, w := range want {
		if fmt.Sprint(got[ex]) != fmt.Sprint(w) {
			t.Fatalf("%s: got %v, want %v", ex, got[ex], w)
		}
	}
	wstest.Eventually(t, wait, "rejections counted", func() bool {
		st := srv.Stats()
		return sourceStatus(st, "nats").Rejected == 1 && sourceStatus(st, "jetstream").Rejected == 1
	})
	if extra, ok := c.TryNext(100 * time.Millisecond); ok {
		t.Fatalf("unexpected frame: %s", extra.Raw)
	}
	code, body := httpDo(t, "GET", "http://"+host+"/api/websocket/stats", "")
	if code != 200 || !strings.Contains(string(body), `"name":"nats"`) || !strings.Contains(string(body), `"sequence":21`) {
		t.Fatalf("admin stats %d: %s", code, body)
	}
	text := metricsText(t, host)
	for prefix, want := range map[string]string{
		`wsproxy_source_up{source="nats",type="nats"}`:           "1",
		`wsproxy_source_up{source="jetstream",type="jetstream"}`: "1",
		`wsproxy_source_messages_total{source="nats"}`:           "20",
		`wsproxy_source_messages_total{source="jetstream"}`:      "10",
		`wsproxy_source_rejected_total{source="jetstream"}`:      "1",
		`wsproxy_source_dropped_total{source="nats"}`:            "0",
		`wsproxy_source_gaps_total{source="jetstream"}`:          "0",
		`wsproxy_source_slow_consumer_total{source="nats"}`:      "0",
	} {
		if got := metric(text, prefix); got != want {
			t.Fatalf("%s = %q, want %q", prefix, got, want)
		}
	}
}

// TestJetStreamKill9ToWebSocketClient: nats-server is killed with SIGKILL
// while a client is being fed, then restarted on the same store; the
// client receives every stored message once, in order.
func TestJetStreamKill9ToWebSocketClient(t *testing.T) {
	ns := natstest.Start(t)
	js := ns.JetStream(t)
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: "MD", Subjects: []string{"market-data.>"}, Storage: jetstream.FileStorage})
	src, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{URL: ns.URL, Stream: "MD", BatchSize: 8,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	_, host := serve(t, config.Config{}, nil, src)
	wstest.Eventually(t, wait, "connected", func() bool { return src.Stats().Connected })
	c := wstest.Dial(t, "ws://"+host+"/ws")
	c.NextOfType(t, "welcome", wait)
	// The publisher goes on through the kill and the restart (retrying
	// each message under one ID until the server has stored it).
	const total = 400
	pubErr := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			body := []byte(mdJSON("binance", "trade", "BTC/USDT", i))
			if _, err := natstest.TryPublish(js, "market-data.trade.binance", fmt.Sprint(i), body, wait); err != nil {
				pubErr <- err
				return
			}
		}
		pubErr <- nil
	}()
	for i := 1; i <= 50; i++ { // mid-stream
		if m := c.Next(t, wait); m.Str("payload", "data", "seq") != fmt.Sprint(i) {
			t.Fatalf("message %d is %s", i, m.Raw)
		}
	}
	ns.Kill9(t)
	ns.Restart(t)
	for i := 51; i <= total; i++ {
		m := c.Next(t, wait)
		if m.Str("payload", "data", "seq") != fmt.Sprint(i) {
			t.Fatalf("message %d is %s (gap, duplicate or reorder)", i, m.Raw)
		}
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	seq := total
	if extra, ok := c.TryNext(100 * time.Millisecond); ok {
		t.Fatalf("duplicate after the last message: %s", extra.Raw)
	}
	if st := src.Stats(); st.Gaps != 0 || st.Received != uint64(seq) {
		t.Fatalf("stats = %+v", st)
	}
}

// TestNATSSourceDownHealth: a NATS or JetStream source whose server dies
// makes the node degraded with lastError at once, unhealthy (503) after
// health.source_down_unhealthy_after, and healthy again once the server is
// back.
func TestNATSSourceDownHealth(t *testing.T) {
	for _, kind := range []string{"nats", "jetstream"} {
		t.Run(kind, func(t *testing.T) {
			ns := natstest.Start(t)
			natstest.CreateStream(t, ns.JetStream(t), jetstream.StreamConfig{Name: "MD", Subjects: []string{"market-data.>"}})
			var src dataflow.Source
			var err error
			bmin, bmax := 10*time.Millisecond, 50*time.Millisecond
			if kind == "nats" {
				src, err = dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{URL: ns.URL, BackoffMin: bmin, BackoffMax: bmax}))
			} else {
				src, err = dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{URL: ns.URL, Stream: "MD", BackoffMin: bmin, BackoffMax: bmax}))
			}
			if err != nil {
				t.Fatal(err)
			}
			const after = 700 * time.Millisecond
			srv, host := serve(t, config.Config{Health: config.HealthConfig{SourceDownUnhealthyAfter: after}}, nil, src)
			health := func() (int, observe.HealthStatus) {
				code, body := httpDo(t, "GET", "http://"+host+"/api/websocket/health", "")
				var h observe.HealthStatus
				if err := json.Unmarshal(body, &h); err != nil {
					t.Fatalf("health %s: %v", body, err)
				}
				return code, h
			}
			wstest.Eventually(t, wait, "healthy", func() bool { code, h := health(); return code == 200 && h.Status == "healthy" })
			// Taken before the kill: the source can notice the loss (and
			// start its down timer) before Kill9 returns.
			killed := time.Now()
			ns.Kill9(t)
			wstest.Eventually(t, wait, "lastError", func() bool { return srv.Stats().Health.LastError != nil })
			if code, h := health(); time.Since(killed) < after && (code != 200 || h.Status != "degraded" ||
				!strings.HasPrefix(h.LastError.Message, kind+": ") || h.LastError.Timestamp == 0) {
				t.Fatalf("early: %d %+v", code, h)
			}
			wstest.Eventually(t, wait, "unhealthy", func() bool { code, h := health(); return code == 503 && h.Status == "unhealthy" })
			if time.Since(killed) < after {
				t.Fatalf("unhealthy after %s, before %s", time.Since(killed), after)
			}
			if v := metric(metricsText(t, host), fmt.Sprintf(`wsproxy_source_up{source=%q,type=%q}`, kind, kind)); v != "0" {
				t.Fatalf("source_up = %q while down", v)
			}
			ns.Restart(t)
			wstest.Eventually(t, wait, "healthy again", func() bool { code, h := health(); return code == 200 && h.Status == "healthy" })
		})
	}
}

func TestNATSSourceConfigKeys(t *testing.T) {
	shipped, err := config.Load("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n, j := shipped.Sources.NATS, shipped.Sources.JetStream
	if n.Enabled || j.Enabled || n.URL != "nats://127.0.0.1:4222" || fmt.Sprint(n.Subjects) != "[market-data.>]" ||
		j.Stream != "MARKET_DATA" || j.Start != "new" || n.PendingMessages != 65536 || j.BatchSize != 512 {
		t.Fatalf("shipped nats %+v jetstream %+v", n, j)
	}
	srcs := natsSources(t, map[string]string{
		"WSPROXY_SOURCES_NATS_ENABLED":      "true",
		"WSPROXY_SOURCES_NATS_URL":          "nats://127.0.0.1:1",
		"WSPROXY_SOURCES_NATS_SUBJECTS":     "market-data.trade.>,market-data.ticker.>",
		"WSPROXY_SOURCES_JETSTREAM_ENABLED": "true",
		"WSPROXY_SOURCES_JETSTREAM_START":   "2026-12-01T10:00:00Z",
	})
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name())
	}
	if strings.Join(names, ",") != "nats,jetstream" {
		t.Fatalf("sources %v", names)
	}
}
