package proxy_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/dispatch"
	"wsproxy/internal/configtest"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// countConn discards writes and counts their bytes (the wire bytes).
type countConn struct {
	wstest.DiscardConn
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
	demo, err := dataflow.NewDemo(configtest.Demo(dataflow.DemoConfig{Interval: time.Millisecond}))
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = demo.Run(ctx, c) }()
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		tb.Fatal("demo feed too slow")
	}
	return c.msgs
}

func procCPU() time.Duration {
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
			p := configtest.NewPool(b, cfg, nil)
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
			o := dispatchOptions()
			o.Compression = mode != "off"
			d := dispatch.New(ix, o)
			for _, md := range msgs[:500] { // warm up: pools, a stream generation
				d.Dispatch(md)
				wstest.Drain(p)
			}
			wire.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := procCPU()
			for i := 0; i < b.N; i++ {
				d.Dispatch(msgs[i%len(msgs)])
				wstest.Drain(p)
			}
			cpu := procCPU() - cpu0
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

// TestDeflateAllocatesOncePerMessage: delivering a message to 1,000
// compressing recipients allocates a small constant in both modes (one
// compression, shared), not per recipient.
func TestDeflateAllocatesOncePerMessage(t *testing.T) {
	if wstest.RaceEnabled {
		t.Skip("the race detector allocates on its own; run without -race (make bench does)")
	}
	msgs := demoMix(t, 200)
	for _, mode := range []string{"per_message", "shared_stream"} {
		var wire atomic.Int64
		ix := subscription.NewIndex[*pool.Conn]()
		p := configtest.NewPool(t, pool.Config{Deflate: pool.DeflateConfig{Mode: pool.DeflateMode(mode), MinSize: 1}}, nil)
		for i := 0; i < 1000; i++ {
			c := p.Add(countConn{n: &wire}, pool.ConnOptions{Compression: pool.CompressContext})
			ix.SetUnfiltered(c, true)
			c.SetStream("*")
			// Release them, so that later tests measuring the process's
			// memory do not start with them.
			t.Cleanup(func() { ix.RemoveSubscriber(c); p.Remove(c) })
		}
		o := dispatchOptions()
		o.Compression = true
		d := dispatch.New(ix, o)
		for _, md := range msgs[:100] {
			d.Dispatch(md)
			wstest.Drain(p)
		}
		i := 100
		allocs := testing.AllocsPerRun(50, func() {
			d.Dispatch(msgs[i])
			i++
			wstest.Drain(p)
		})
		z := p.DeflateStats()
		if z.FramesCompressed < 100*1000 {
			t.Fatalf("%s: %d frames compressed", mode, z.FramesCompressed)
		}
		if allocs > 20 {
			t.Fatalf("%s: %.0f allocations to deliver one message to 1000 compressing recipients", mode, allocs)
		}
		t.Logf("%s: %.1f allocations per message to 1000 recipients", mode, allocs)
	}
}

func TestCompressionConfig(t *testing.T) {
	cfg, err := config.Parse([]byte("compression:\n  enabled: true\n  mode: shared_stream\n  reset_every: 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil || !cfg.Compression.Enabled || cfg.Compression.ResetEvery != 10 || cfg.Compression.MaxStreams != 16 {
		t.Fatalf("%+v %v", cfg.Compression, err)
	}
	for _, bad := range []string{"compression:\n  mode: gzip\n", "compression:\n  level: 12\n", "compression:\n  message_level: -3\n"} {
		cfg, err := config.Parse([]byte(bad))
		if err == nil {
			cfg.ApplyDefaults()
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), "compression") {
			t.Fatalf("%q: %v", bad, err)
		}
	}
	t.Setenv("WSPROXY_COMPRESSION_ENABLED", "true")
	t.Setenv("WSPROXY_COMPRESSION_MODE", "shared_stream")
	cfg, err = config.Load("")
	if err != nil || !cfg.Compression.Enabled || cfg.Compression.Mode != "shared_stream" {
		t.Fatalf("env: %+v %v", cfg.Compression, err)
	}
}

// dispatchOptions are the default dispatcher options (an empty
// configuration's) with a queue of 16 and snapshots off.
func dispatchOptions() dispatch.Options {
	o := dispatch.OptionsOf(config.Default())
	o.Queue, o.SnapshotKeys = 16, 0
	return o
}
