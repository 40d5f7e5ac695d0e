package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"wsproxy/internal/natstest"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
)

// natsNodeEnv is the environment of a node fed by core NATS and by the
// JetStream stream MD of the server at url, demo off.
func natsNodeEnv(url string) []string {
	return []string{
		"WSPROXY_SOURCES_DEMO_ENABLED=false",
		"WSPROXY_SOURCES_NATS_ENABLED=true",
		"WSPROXY_SOURCES_NATS_URL=" + url,
		"WSPROXY_SOURCES_NATS_BACKOFF_MIN=20ms",
		"WSPROXY_SOURCES_NATS_BACKOFF_MAX=200ms",
		"WSPROXY_SOURCES_JETSTREAM_ENABLED=true",
		"WSPROXY_SOURCES_JETSTREAM_URL=" + url,
		"WSPROXY_SOURCES_JETSTREAM_STREAM=MD",
		"WSPROXY_SOURCES_JETSTREAM_BACKOFF_MIN=20ms",
		"WSPROXY_SOURCES_JETSTREAM_BACKOFF_MAX=200ms",
		"WSPROXY_LOG_LEVEL=warn",
	}
}

func sourcesUp(t testing.TB, p *proc, n int) bool {
	var st observe.Stats
	getJSON(t, p.httpURL("/api/websocket/stats"), &st)
	up := 0
	for _, s := range st.Dataflow.Sources {
		if s.Connected {
			up++
		}
	}
	return len(st.Dataflow.Sources) == n && up == n
}

// TestTwoNodesShareOneNATS runs the real binary twice against one private
// nats-server (configured through the environment only): every client of
// both nodes receives the same messages, core NATS (no queue group, so no
// splitting between nodes) and JetStream alike, also after the server was
// killed with SIGKILL and restarted.
func TestTwoNodesShareOneNATS(t *testing.T) {
	ns := natstest.Start(t)
	js := ns.JetStream(t)
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: "MD", Subjects: []string{"jsmd.>"}, Storage: jetstream.FileStorage})
	nodes := []*proc{startProc(t, natsNodeEnv(ns.URL)), startProc(t, natsNodeEnv(ns.URL))}
	var clients []*wstest.Client
	for _, p := range nodes {
		wstest.Eventually(t, redisWait, "node subscribed to NATS", func() bool { return sourcesUp(t, p, 2) })
		c := wstest.Dial(t, p.url("/ws"))
		c.NextOfType(t, "welcome", redisWait)
		clients = append(clients, c)
	}
	nc := ns.Conn(t)
	seq := 0
	round := func(n int) {
		t.Helper()
		from := seq + 1
		for range n {
			seq++
			if err := nc.Publish("market-data.trade.binance", []byte(fmt.Sprintf(
				`{"exchange":"binance","symbol":"BTC/USDT","type":"trade","timestamp":%d,"data":{"seq":%d}}`, 1700000000000+seq, seq))); err != nil {
				t.Fatal(err)
			}
			natstest.Publish(t, js, "jsmd.trade.okx", fmt.Sprint(seq), []byte(fmt.Sprintf(
				`{"exchange":"okx","symbol":"ETH/USDT","type":"trade","timestamp":%d,"data":{"seq":%d}}`, 1700000000000+seq, seq)))
		}
		for i, c := range clients {
			next := map[string]int{"binance": from, "okx": from}
			for range 2 * n {
				m := c.NextOfType(t, "trade", redisWait)
				ex := m.Str("payload", "exchange")
				if m.Str("payload", "data", "seq") != fmt.Sprint(next[ex]) {
					t.Fatalf("node %d: %s message is %s, want seq %d", i, ex, m.Raw, next[ex])
				}
				next[ex]++
			}
		}
	}
	round(50)
	ns.Kill9(t)
	ns.Restart(t)
	for _, p := range nodes {
		wstest.Eventually(t, redisWait, "node back on NATS", func() bool { return sourcesUp(t, p, 2) })
	}
	round(50)
	for i, c := range clients {
		if extra, ok := c.TryNext(100 * time.Millisecond); ok {
			t.Fatalf("node %d: unexpected frame %s", i, extra.Raw)
		}
	}
}
