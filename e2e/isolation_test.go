package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
)

// ingestEnv is a node fed only by HTTP ingest.
func ingestEnv(extra ...string) []string {
	return append([]string{
		"WSPROXY_SOURCES_DEMO_ENABLED=false",
		"WSPROXY_SOURCES_INGEST_ENABLED=true",
		"WSPROXY_SOURCES_INGEST_MAX_BODY_BYTES=8388608",
		"WSPROXY_LOG_LEVEL=warn",
	}, extra...)
}

// ingest posts NDJSON lines and checks that every one was accepted.
func ingest(t testing.TB, p *proc, lines []string) {
	t.Helper()
	body := strings.Join(lines, "\n")
	resp, err := http.Post(p.httpURL(dataflow.IngestPath), "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"accepted":`+strconv.Itoa(len(lines)))) {
		t.Fatalf("ingest of %d lines: %d %s", len(lines), resp.StatusCode, b)
	}
}

func nodeStats(t testing.TB, p *proc) observe.Stats {
	t.Helper()
	var st observe.Stats
	getJSON(t, p.httpURL("/api/websocket/stats"), &st)
	return st
}

// rememberTickers ingests tickers of n symbols and waits until they are
// dispatched.
func rememberTickers(t testing.TB, p *proc, n int) {
	t.Helper()
	before := nodeStats(t, p).Dataflow.MessagesForwarded
	const perPost = 5000
	for i := 0; i < n; i += perPost {
		var lines []string
		for j := i; j < min(i+perPost, n); j++ {
			lines = append(lines, fmt.Sprintf(`{"exchange":"binance","symbol":"S%d/USDT","type":"ticker","timestamp":1723190400000,"data":{"lastPrice":"1.5"}}`, j))
		}
		ingest(t, p, lines)
	}
	wstest.Eventually(t, 60*time.Second, "tickers dispatched", func() bool {
		return nodeStats(t, p).Dataflow.MessagesForwarded >= before+uint64(n)
	})
}

// measureBystander publishes n trades of BYS/USDT, one every gap, to a
// client subscribed to exactly them, and returns the latencies sorted.
func measureBystander(t testing.TB, p *proc, c *wstest.Client, n int, gap time.Duration) []time.Duration {
	t.Helper()
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(lat) < n {
			m, ok := c.TryNext(30 * time.Second)
			if !ok {
				return
			}
			if m.Type != "trade" {
				continue
			}
			if sent, err := strconv.ParseInt(m.Str("payload", "data", "sent"), 10, 64); err == nil {
				lat = append(lat, time.Duration(time.Now().UnixNano()-sent))
			}
		}
	}()
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		ingest(t, p, []string{fmt.Sprintf(`{"exchange":"binance","symbol":"BYS/USDT","type":"trade","timestamp":%d,"data":{"sent":"%d","seq":%d}}`,
			time.Now().UnixMilli(), time.Now().UnixNano(), i)})
	}
	<-done
	if len(lat) != n {
		t.Fatalf("bystander received %d of %d trades", len(lat), n)
	}
	slices.Sort(lat)
	return lat
}

func pct(lat []time.Duration, q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }

// checkIsolation measures the bystander quietly, then while churn runs,
// and applies the bound: p99 under churn ≤ 1.5 × quiet p99 + 10 ms, no
// dispatcher drop.
//
// A shared machine adds noise of its own to one round (another process
// taking the cores for a few milliseconds), so up to three rounds are
// measured and the first within the bound passes; a real regression misses
// it in every round (before snapshots left the dispatcher's fence: 384 ms
// against 5 ms). Beside make test-loaded's CPU hog, which takes every core
// on purpose, latency measures the hog: the bound is not checked there (the
// benchmarks and the plain suite check it).
func checkIsolation(t *testing.T, p *proc, churn func() (stop func())) {
	if os.Getenv("CI_LOADED") == "1" {
		t.Skip("CI_LOADED=1: a latency bound is not measured beside a CPU hog on every core")
	}
	by := wstest.Dial(t, p.url("/ws"))
	by.NextOfType(t, "welcome", redisWait)
	by.Send(t, `{"type":"subscribe","payload":{"exchange":["binance"],"symbols":["BYS/USDT"],"dataTypes":["trade"]}}`)
	by.NextOfType(t, "subscribed", redisWait)
	const n, gap, rounds = 400, 5 * time.Millisecond, 3
	measureBystander(t, p, by, 50, gap) // warm up
	for round := 1; ; round++ {
		d0 := nodeStats(t, p).Dataflow.Dropped
		quiet := measureBystander(t, p, by, n, gap)
		stop := churn()
		loaded := measureBystander(t, p, by, n, gap)
		stop()
		drops := nodeStats(t, p).Dataflow.Dropped - d0
		qp, cp := pct(quiet, 0.99), pct(loaded, 0.99)
		t.Logf("round %d: bystander p99 quiet %s (p50 %s), under churn %s (p50 %s, max %s); dispatcher drops %d", round,
			qp.Round(10*time.Microsecond), pct(quiet, 0.5).Round(10*time.Microsecond), cp.Round(10*time.Microsecond),
			pct(loaded, 0.5).Round(10*time.Microsecond), loaded[len(loaded)-1].Round(10*time.Microsecond), drops)
		if drops != 0 {
			t.Fatalf("%d dispatcher drops", drops)
		}
		if cp <= qp*3/2+10*time.Millisecond {
			return
		}
		if round == rounds {
			t.Fatalf("bound missed in %d rounds: churn p99 %s > 1.5 × %s + 10ms", rounds, cp, qp)
		}
	}
}

// TestChurnDoesNotHurtBystander: with 50,000 remembered tickers, 4 clients
// toggle the legacy marketData channel every 50 ms (each subscribe asks for
// a snapshot of every key); a bystander's trades keep their latency.
func TestChurnDoesNotHurtBystander(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	p := startProcBin(t, plainBinary(t), ingestEnv())
	rememberTickers(t, p, 50000)
	checkIsolation(t, p, func() func() {
		return wstest.StartChurners(t, p.url("/ws"), 4, 50*time.Millisecond, "",
			`{"type":"subscribe","payload":{"channel":"marketData"}}`,
			`{"type":"unsubscribe","payload":{"channel":"marketData"}}`)
	})
	st := nodeStats(t, p).Dataflow
	if st.SnapshotSent == 0 {
		t.Fatalf("no snapshot frame sent: %+v", st)
	}
	t.Logf("snapshots: %d frames sent, %d left out (queue), %d keys not examined (rate)",
		st.SnapshotSent, st.SnapshotTruncated, st.SnapshotRateLimited)
}

// TestGetStatsClientsDoNotHurtBystander: 1,000 clients ask for STATS at
// their rate limit (message_rate / stats_cost); a bystander's trades keep
// their latency.
func TestGetStatsClientsDoNotHurtBystander(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	p := startProcBin(t, plainBinary(t), ingestEnv())
	rememberTickers(t, p, 50000)
	l := config.Config{}
	l.ApplyDefaults()
	period := time.Duration(float64(l.Limits.StatsCost) * float64(time.Second) / l.Limits.MessageRate)
	checkIsolation(t, p, func() func() {
		return wstest.StartChurners(t, p.url("/ws"), 1000, period,
			`{"type":"subscribe","payload":{"exchange":["none"]}}`, `{"type":"getStats"}`)
	})
}

// TestBurstOf2000ReachesPromptClient: 2,000 small messages ingested in one
// request, back to back, all reach a client that reads promptly, in order.
func TestBurstOf2000ReachesPromptClient(t *testing.T) {
	p := startProc(t, ingestEnv())
	c := wstest.Dial(t, p.url("/ws"))
	c.NextOfType(t, "welcome", redisWait)
	const n = 2000
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"exchange":"binance","symbol":"BTC/USDT","type":"trade","timestamp":%d,"data":{"id":"%d","price":"50000.1"}}`, 1723190400000+i, i)
	}
	ingest(t, p, lines)
	for i := 0; i < n; i++ {
		m := c.NextOfType(t, "trade", redisWait)
		if got := m.Str("payload", "data", "id"); got != strconv.Itoa(i) {
			t.Fatalf("trade %d: got id %s; shed: %v", i, got, nodeStats(t, p).Pool.Shed)
		}
	}
	if shed := nodeStats(t, p).Pool.Shed; shed["queue_full"] != 0 {
		t.Fatalf("shed: %v", shed)
	}
}
