package proxy_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
)

// The isolation scenarios of the issue "one client's actions never hurt
// another's delivery": a bystander subscribed to one symbol's trades
// measures publish-to-receive latency while other clients churn. The bound
// is the same for every scenario: p99 under churn ≤ 1.5 × quiet p99 + 10 ms,
// and the dispatcher drops nothing.

// isolationKeys is how many latest-wins keys (tickers of as many symbols)
// the server remembers before the measurement.
const isolationKeys = 50000

// rememberTickers ingests n tickers of distinct symbols and waits until they
// are dispatched.
func (h *harness) rememberTickers(t testing.TB, n int) {
	t.Helper()
	before := h.srv.Dispatcher().Stats().Forwarded
	for i := 0; i < n; i++ {
		md := dataflow.MarketData{Exchange: "binance", Type: "ticker", Symbol: "S" + strconv.Itoa(i) + "/USDT",
			Timestamp: 1723190400000, Data: []byte(`{"lastPrice":"1.5","volume":"100"}`)}
		for {
			err := h.in.Output(context.Background(), md)
			if err == nil {
				break
			}
			if err != dataflow.ErrBackpressure {
				t.Fatal(err)
			}
			// The dispatcher queue is full: wait for it to move.
			wstest.Eventually(t, wait, "dispatch queue drains", func() bool { return h.srv.Dispatcher().Stats().Queued < 1024 })
		}
	}
	wstest.Eventually(t, 30*time.Second, "tickers dispatched", func() bool {
		return h.srv.Dispatcher().Stats().Forwarded >= before+uint64(n)
	})
}

// bystander is a client subscribed to the trades of one symbol, which
// records how long each trade took from publication to arrival.
type bystander struct {
	c      *wstest.Client
	symbol string
}

func (h *harness) newBystander(t testing.TB) *bystander {
	t.Helper()
	b := &bystander{c: h.dial(t), symbol: "BYS/USDT"}
	b.c.Send(t, `{"type":"subscribe","payload":{"exchange":["binance"],"symbols":["BYS/USDT"],"dataTypes":["trade"]}}`)
	b.c.NextOfType(t, "subscribed", wait)
	return b
}

// measure publishes n trades of the bystander's symbol, one every gap, and
// returns their latencies, sorted.
func (b *bystander) measure(t testing.TB, h *harness, n int, gap time.Duration) []time.Duration {
	t.Helper()
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(lat) < n {
			m, ok := b.c.TryNext(30 * time.Second)
			if !ok {
				return
			}
			if m.Type != "trade" {
				continue
			}
			sent, err := strconv.ParseInt(m.Str("payload", "data", "sent"), 10, 64)
			if err != nil {
				continue
			}
			lat = append(lat, time.Duration(time.Now().UnixNano()-sent))
		}
	}()
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		md := dataflow.MarketData{Exchange: "binance", Type: "trade", Symbol: b.symbol, Timestamp: time.Now().UnixMilli(),
			Data: []byte(fmt.Sprintf(`{"sent":"%d","seq":%d}`, time.Now().UnixNano(), i))}
		if err := h.in.Output(context.Background(), md); err != nil {
			t.Fatalf("publish trade %d: %v", i, err)
		}
	}
	<-done
	if len(lat) != n {
		t.Fatalf("bystander received %d of %d trades", len(lat), n)
	}
	slices.Sort(lat)
	return lat
}

func p99(lat []time.Duration) time.Duration { return lat[int(0.99*float64(len(lat)-1))] }

// Scripts of the churning clients.
var (
	// churnMarketData toggles the legacy marketData channel: every subscribe
	// asks for a snapshot of every remembered key.
	churnMarketData = []string{
		`{"type":"subscribe","payload":{"channel":"marketData"}}`,
		`{"type":"unsubscribe","payload":{"channel":"marketData"}}`,
	}
	churnGetStats = []string{`{"type":"getStats"}`}
)

// isolationResult is what one quiet-then-churn run measured.
type isolationResult struct {
	quiet, churn     time.Duration // bystander p99
	quietMax, churnM time.Duration
	dropped          uint64 // dispatcher drops during the run
	queueFull        uint64 // frames shed queue_full during the run
}

func (r isolationResult) String() string {
	return fmt.Sprintf("bystander p99 quiet %s (max %s), under churn %s (max %s); dispatcher drops %d, queue_full %d",
		r.quiet.Round(10*time.Microsecond), r.quietMax.Round(10*time.Microsecond),
		r.churn.Round(10*time.Microsecond), r.churnM.Round(10*time.Microsecond), r.dropped, r.queueFull)
}

// withinBound reports whether churn p99 ≤ 1.5 × quiet p99 + 10 ms and the
// dispatcher dropped nothing.
func (r isolationResult) withinBound() bool {
	return r.churn <= r.quiet*3/2+10*time.Millisecond && r.dropped == 0
}

// runIsolation measures the bystander's p99 over n trades quietly, then
// over n trades while the churners of start run.
func runIsolation(t testing.TB, h *harness, n int, start func() (stop func())) isolationResult {
	t.Helper()
	by := h.newBystander(t)
	by.measure(t, h, 50, 2*time.Millisecond) // warm up
	d0 := h.srv.Dispatcher().Stats().Dropped
	s0 := h.srv.Pool().Stats().Shed["queue_full"]
	quiet := by.measure(t, h, n, 2*time.Millisecond)
	stop := start()
	churn := by.measure(t, h, n, 2*time.Millisecond)
	stop()
	return isolationResult{
		quiet: p99(quiet), quietMax: quiet[len(quiet)-1],
		churn: p99(churn), churnM: churn[len(churn)-1],
		dropped:   h.srv.Dispatcher().Stats().Dropped - d0,
		queueFull: h.srv.Pool().Stats().Shed["queue_full"] - s0,
	}
}

func churnMarketDataScenario(t testing.TB) (*harness, func() func()) {
	h := start(t, nil)
	h.rememberTickers(t, isolationKeys)
	return h, func() func() { return wstest.StartChurners(t, h.url, 4, 50*time.Millisecond, "", churnMarketData...) }
}

func getStatsScenario(t testing.TB, clients int) (*harness, func() func()) {
	h := start(t, func(c *config.Config) { c.MaxConnections = clients + 100 })
	h.rememberTickers(t, isolationKeys)
	// At their rate limit: message_rate / stats_cost getStats per second each.
	l := h.srv.Config().Limits
	period := time.Duration(float64(l.StatsCost) * float64(time.Second) / l.MessageRate)
	// Subscribed to nothing that is published: they only ask for STATS.
	setup := `{"type":"subscribe","payload":{"exchange":["none"]}}`
	return h, func() func() { return wstest.StartChurners(t, h.url, clients, period, setup, churnGetStats...) }
}

// BenchmarkIsolationChurn: with 50,000 remembered tickers, 4 clients toggle
// the legacy marketData channel every 50 ms (each subscribe asks for a
// snapshot). Reports the bystander's trade p99 quiet and under churn (ms),
// dispatcher drops and frames shed queue_full. b.N is the trades measured per
// phase:
//
//	go test -run '^$' -bench IsolationChurn -benchtime 1500x ./proxy
func BenchmarkIsolationChurn(b *testing.B) {
	h, churn := churnMarketDataScenario(b)
	benchIsolation(b, h, churn)
}

// BenchmarkIsolationGetStats: 1,000 clients send getStats at their rate
// limit; same report as BenchmarkIsolationChurn.
//
//	go test -run '^$' -bench IsolationGetStats -benchtime 1500x ./proxy
func BenchmarkIsolationGetStats(b *testing.B) {
	h, churn := getStatsScenario(b, 1000)
	benchIsolation(b, h, churn)
}

func benchIsolation(b *testing.B, h *harness, churn func() func()) {
	n := max(b.N, 200)
	b.ResetTimer()
	r := runIsolation(b, h, n, churn)
	b.StopTimer()
	b.ReportMetric(float64(r.quiet.Microseconds())/1000, "quiet-p99-ms")
	b.ReportMetric(float64(r.churn.Microseconds())/1000, "churn-p99-ms")
	b.ReportMetric(float64(r.churnM.Microseconds())/1000, "churn-max-ms")
	b.ReportMetric(float64(r.dropped), "dispatch-drops")
	b.ReportMetric(float64(r.queueFull), "queue-full")
	b.Logf("%s", r)
}
