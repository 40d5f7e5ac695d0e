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
	"wsproxy/internal/configtest"
	"wsproxy/internal/redistest"
	"wsproxy/internal/wstest"
)

// BenchmarkRedisPubSubLatency measures publish-to-receive latency through
// the whole path: PUBLISH to Redis, PSUBSCRIBE read loop, decode, dispatch,
// connection writer, loopback socket, WebSocket client. Messages are
// published at a fixed rate (1 per millisecond) and each carries its send
// time; p50/p99/max are reported in microseconds. Run with
//
//	go test -run '^$' -bench RedisPubSubLatency -benchtime 2000x ./proxy
func BenchmarkRedisPubSubLatency(b *testing.B) {
	addr := redistest.Addr(b)
	prefix := redistest.Prefix(b)
	src, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: addr, Pattern: prefix + "market-data-*"}))
	if err != nil {
		b.Fatal(err)
	}
	_, host := serve(b, config.Config{}, nil, src)
	wstest.Eventually(b, wait, "subscribed", func() bool { return src.Stats().Connected })
	c := wstest.Dial(b, "ws://"+host+"/ws")
	c.NextOfType(b, "welcome", wait)
	rdb := redistest.Client(b, addr)
	ctx := context.Background()
	ch := prefix + "market-data-trade-binance"

	measureDelivery(b, c, func(i int, sent int64) {
		body := fmt.Sprintf(`{"exchange":"binance","symbol":"BTC/USDT","type":"trade","timestamp":%d,"data":{"sent":%d,"seq":%d}}`,
			time.Now().UnixMilli(), sent, i)
		if err := rdb.Publish(ctx, ch, body).Err(); err != nil {
			b.Fatal(err)
		}
	})
}

// measureDelivery publishes b.N messages, one per millisecond, each
// carrying its send time in data.sent, and reports the p50, p99 and max
// of the time until c received them, in microseconds.
func measureDelivery(b *testing.B, c *wstest.Client, publish func(i int, sent int64)) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	got := make(chan struct{})
	go func() {
		defer close(got)
		for len(lat) < b.N {
			m, ok := c.TryNext(wait)
			if !ok {
				return
			}
			sent, err := strconv.ParseInt(m.Str("payload", "data", "sent"), 10, 64)
			if err != nil {
				continue
			}
			lat = append(lat, time.Duration(time.Now().UnixNano()-sent))
		}
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		publish(i, time.Now().UnixNano())
	}
	<-got
	b.StopTimer()
	if len(lat) != b.N {
		b.Fatalf("received %d of %d", len(lat), b.N)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
