package proxy_test

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
	"wsproxy/proxy"
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
// are full, so that every message is conflated or dropped for them. Run with
// a fixed count, e.g. -benchtime=3000x; the ratio of the two p99s is the
// cost stalled clients impose on healthy ones. lost-msgs counts messages
// healthy clients did not get (their own queue overflowed: on a starved
// machine a reader in this process can fall 100 messages behind).
func BenchmarkHealthyP99(b *testing.B) {
	for _, stalledN := range []int{0, 10} {
		b.Run("stalled="+strconv.Itoa(stalledN*100/(40+stalledN))+"%", func(b *testing.B) {
			benchHealthyP99(b, 40, stalledN)
		})
	}
}

func benchHealthyP99(b *testing.B, healthyN, stalledN int) {
	h := start(b, func(c *proxy.Config) {
		c.WriteTimeout = time.Minute
		c.SlowConsumer.MaxLag = time.Minute // stalled clients stay for the whole run
	})
	var readers []*latencyReader
	var healthyConns []*pool.Conn
	for i := 0; i < healthyN; i++ {
		r := wstest.DialRaw(b, h.url, 0)
		healthyConns = append(healthyConns, h.poolConn(b, r.Conn.LocalAddr()))
		subscribeRaw(b, r, `{"exchange":["bench"]}`)
		readers = append(readers, readLatencies(r, b.N))
	}
	published := uint64(0)
	for i := 0; i < stalledN; i++ {
		r := wstest.DialRaw(b, h.url, stalledRcvBuf) // unfiltered: receives everything
		published = saturate(b, h, h.poolConn(b, r.Conn.LocalAddr()), published)
	}

	pad := strings.Repeat("p", 400)
	types := []string{"trade", "ticker", "trade", "depth", "trade"}
	const interval = time.Millisecond
	b.ResetTimer()
	begin := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(begin.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		md := dataflow.MarketData{Exchange: "bench", Type: types[i%len(types)], Symbol: "S" + strconv.Itoa(i%4) + "/USDT",
			Timestamp: int64(i + 1), Data: []byte(`{"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"pad":"` + pad + `"}`)}
		if err := h.in.Output(context.Background(), md); err != nil {
			b.Fatal(err)
		}
	}
	h.dispatched(b, published+uint64(b.N))
	drained(b, healthyConns...)
	h.send(b, "bench", "trade", "END/USDT", `{"end":true}`)
	var all []int64
	for i, lr := range readers {
		select {
		case <-lr.done:
		case <-time.After(30 * time.Second):
			b.Fatalf("healthy client %d got %d of %d messages and no end", i, len(lr.lat), b.N)
		}
		all = append(all, lr.lat...)
	}
	b.StopTimer()
	b.ReportMetric(float64(healthyN*b.N-len(all)), "lost-msgs")
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e3 }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op")
}
