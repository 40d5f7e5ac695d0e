package proxy_test

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
)

// latencyReader collects, for every data frame a raw client receives, the
// time since the "t" (unix ns) the publisher embedded, until a frame with
// "end" arrives.
type latencyReader struct {
	lat  []int64
	done chan struct{}
}

func readLatencies(r *wstest.Raw, want int) *latencyReader {
	lr := &latencyReader{lat: make([]int64, 0, want), done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		key, end := []byte(`"t":`), []byte(`"end"`)
		for {
			f, err := r.ReadFrame(time.Time{})
			if err != nil {
				return
			}
			now := time.Now().UnixNano()
			if bytes.Contains(f.Payload, end) {
				return
			}
			i := bytes.Index(f.Payload, key)
			if f.Op != wstest.OpText || i < 0 {
				continue
			}
			rest := f.Payload[i+len(key):]
			sent, err := strconv.ParseInt(string(rest[:bytes.IndexAny(rest, ",}")]), 10, 64)
			if err != nil {
				return
			}
			lr.lat = append(lr.lat, now-sent)
		}
	}()
	return lr
}

// BenchmarkHealthyP99 measures the delivery latency (publish to client
// read) of 40 healthy clients at a fixed rate of 1,000 msg/s, alone and
// with 10 more clients (20% of 50) that stopped reading and whose queues
// are full, so that every message is conflated or dropped for them. The two
// setups alternate in rounds of b.N messages within one run, so that a
// change in machine load affects both alike; run with a fixed count, e.g.
// -benchtime=1000x. p99-ratio is stalled p99 / alone p99: the cost stalled
// clients impose on healthy ones. lost-* counts messages healthy clients
// did not get (their own queue overflowed: on a starved machine a reader in
// this process can fall 100 messages behind).
func BenchmarkHealthyP99(b *testing.B) {
	const rounds, healthyN = 3, 40
	var alone, stalled []int64
	lostAlone, lostStalled := 0, 0
	for r := 0; r < rounds; r++ {
		lat, lost := healthyLatencies(b, healthyN, 0, b.N)
		alone, lostAlone = append(alone, lat...), lostAlone+lost
		lat, lost = healthyLatencies(b, healthyN, 10, b.N)
		stalled, lostStalled = append(stalled, lat...), lostStalled+lost
	}
	slices.Sort(alone)
	slices.Sort(stalled)
	pct := func(all []int64, p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e3 }
	b.ReportMetric(pct(alone, 0.50), "p50-µs-alone")
	b.ReportMetric(pct(stalled, 0.50), "p50-µs-stalled20%")
	b.ReportMetric(pct(alone, 0.99), "p99-µs-alone")
	b.ReportMetric(pct(stalled, 0.99), "p99-µs-stalled20%")
	b.ReportMetric(pct(stalled, 0.99)/pct(alone, 0.99), "p99-ratio")
	b.ReportMetric(float64(lostAlone), "lost-alone")
	b.ReportMetric(float64(lostStalled), "lost-stalled20%")
	b.ReportMetric(0, "ns/op")
}

// healthyLatencies runs one server with healthyN reading clients and
// stalledN saturated ones, publishes n messages at 1,000 msg/s and returns
// the healthy clients' latencies and how many messages they missed.
func healthyLatencies(b *testing.B, healthyN, stalledN, n int) ([]int64, int) {
	b.StopTimer()
	defer b.StartTimer()
	h := start(b, func(c *config.Config) {
		c.WriteTimeout = time.Minute
		c.SlowConsumer.MaxLag = time.Minute // stalled clients stay for the whole run
	})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.srv.Shutdown(ctx)
	}()
	var readers []*latencyReader
	var healthyConns []*pool.Conn
	for i := 0; i < healthyN; i++ {
		r := wstest.DialRaw(b, h.url, 0)
		defer r.Conn.Close()
		healthyConns = append(healthyConns, h.poolConn(b, r.Conn.LocalAddr()))
		subscribeRaw(b, r, `{"exchange":["bench"]}`)
		readers = append(readers, readLatencies(r, n))
	}
	published := uint64(0)
	for i := 0; i < stalledN; i++ {
		r := wstest.DialRaw(b, h.url, stalledRcvBuf) // unfiltered: receives everything
		defer r.Conn.Close()
		published = saturate(b, h, h.poolConn(b, r.Conn.LocalAddr()), published)
	}

	pad := strings.Repeat("p", 400)
	types := []string{"trade", "ticker", "trade", "depth", "trade"}
	const interval = time.Millisecond
	b.StartTimer()
	begin := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(begin.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		md := dataflow.MarketData{Exchange: "bench", Type: types[i%len(types)], Symbol: "S" + strconv.Itoa(i%4) + "/USDT",
			Timestamp: int64(i + 1), Data: []byte(`{"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"pad":"` + pad + `"}`)}
		if err := h.in.Output(context.Background(), md); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	h.dispatched(b, published+uint64(n))
	drained(b, healthyConns...)
	h.send(b, "bench", "trade", "END/USDT", `{"end":true}`)
	var all []int64
	for i, lr := range readers {
		select {
		case <-lr.done:
		case <-time.After(30 * time.Second):
			b.Fatalf("healthy client %d got %d of %d messages and no end", i, len(lr.lat), n)
		}
		all = append(all, lr.lat...)
	}
	return all, healthyN*n - len(all)
}
