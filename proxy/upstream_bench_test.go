package proxy_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
)

// BenchmarkUpstreamLoadWSLatency measures WebSocket delivery latency
// (in-process publish to client receive, one message per millisecond) on a
// node with an upstream: idle; "stalled", 200 proxied requests held open by
// an upstream that does not answer (the WebSocket side must not notice);
// "streaming", those 200 plus 20 event streams of 1,000 events/s each
// flowing through the node (CPU shared with the pass-through). Compare them
// in one run:
//
//	go test -run '^$' -bench UpstreamLoadWSLatency -benchtime 2000x ./proxy
func BenchmarkUpstreamLoadWSLatency(b *testing.B) {
	for _, mode := range []string{"idle", "stalled", "streaming"} {
		held, streams := 0, 0
		switch mode {
		case "stalled":
			held = 200
		case "streaming":
			held, streams = 200, 20
		}
		b.Run("upstream-"+mode, func(b *testing.B) {
			up := newCollector(b)
			f := startFront(b, func(c *config.Config) { c.Upstream.URL = up.srv.URL })
			var wg sync.WaitGroup
			ctx, cancel := context.WithCancel(context.Background())
			b.Cleanup(func() { cancel(); close(up.release); wg.Wait() })
			for range held {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if resp, err := f.stream.Get(f.base + "/api/slow"); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
			}
			for range streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequestWithContext(ctx, "GET", f.base+"/api/stats/ticker", nil)
					if resp, err := f.stream.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
			}
			wstest.Eventually(b, wait, "upstream holds every request", func() bool { return up.inFlight.Load() == int64(held) })
			c := wstest.Dial(b, f.ws)
			c.NextOfType(b, "welcome", wait)
			measureDelivery(b, c, func(i int, sent int64) {
				md := dataflow.MarketData{Exchange: "binance", Type: "trade", Symbol: "BTC/USDT", Timestamp: int64(i + 1),
					Data: []byte(`{"sent":` + strconv.FormatInt(sent, 10) + `}`)}
				if err := f.in.Output(context.Background(), md); err != nil {
					b.Fatal(err)
				}
			})
			if up.inFlight.Load() != int64(held) {
				b.Fatalf("held requests ended early: %d in flight", up.inFlight.Load())
			}
		})
	}
}
