package proxy_test

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wsproxy/dataflow"
	"wsproxy/pool"
	"wsproxy/proxy"
	"wsproxy/subscription"
)

// countConn discards writes and counts their bytes (the wire bytes).
type countConn struct {
	nullConn
	n *atomic.Int64
}

func (c countConn) Write(b []byte) (int, error) { c.n.Add(int64(len(b))); return len(b), nil }

// collect is a sink keeping the first n messages.
type collect struct {
	mu   sync.Mutex
	n    int
	msgs []*dataflow.MarketData
	done chan struct{}
}

func (c *collect) Deliver(md *dataflow.MarketData) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) < c.n {
		c.msgs = append(c.msgs, md)
		if len(c.msgs) == c.n {
			close(c.done)
		}
	}
	return true
}

// demoMix returns n messages of the demo feed (trades, tickers, depth,
// klines over three symbols), as `go run .` serves them.
func demoMix(tb testing.TB, n int) []*dataflow.MarketData {
	tb.Helper()
	c := &collect{n: n, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = dataflow.NewDemo(dataflow.DemoConfig{Interval: time.Millisecond}).Run(ctx, c) }()
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		tb.Fatal("demo feed too slow")
	}
	return c.msgs
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDeflate1k delivers the demo mix to 1,000 unfiltered connections
// (one delivery sequence) with compression off, per_message and
// shared_stream, writers included, and reports wire bytes and process CPU
// per delivered message.
func BenchmarkDeflate1k(b *testing.B) {
	msgs := demoMix(b, 3000)
	for _, mode := range []string{"off", "per_message", "shared_stream"} {
		b.Run(mode, func(b *testing.B) {
			var wire atomic.Int64
			ix := subscription.NewIndex[*pool.Conn]()
			cfg := pool.Config{}
			if mode != "off" {
				cfg.Deflate = pool.DeflateConfig{Mode: pool.DeflateMode(mode)}
			}
			p := pool.New(cfg, nil)
			const n = 1000
			for i := 0; i < n; i++ {
				opts := pool.ConnOptions{}
				if mode != "off" {
					opts.Compression = pool.CompressContext
				}
				c := p.Add(countConn{n: &wire}, opts)
				ix.SetUnfiltered(c, true)
				c.SetStream("*")
			}
			d := proxy.NewDispatcher(ix, 16)
			if mode != "off" {
				d.EnableCompression()
			}
			for _, md := range msgs[:500] { // warm up: pools, a stream generation
				d.Dispatch(md)
				drain(b, p)
			}
			wire.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				d.Dispatch(msgs[i%len(msgs)])
				drain(b, p)
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			deliveries := float64(b.N) * n
			b.ReportMetric(float64(wire.Load())/deliveries, "wire-B/delivery")
			b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
			b.ReportMetric(0, "ns/op")
			if z := p.DeflateStats(); mode != "off" && z.FramesCompressed == 0 {
				b.Fatalf("nothing compressed: %+v", z)
			}
		})
	}
}
