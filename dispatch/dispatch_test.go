package dispatch_test

import (
	"strconv"
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

// fanout builds n connections subscribed like a realistic mix: a third
// unfiltered, a third to one exchange, a third to a symbol and type.
func fanout(tb testing.TB, n int, fo ...dispatch.FanOut) (*dispatch.Dispatcher, *pool.Pool) {
	tb.Helper()
	ix := subscription.NewIndex[*pool.Conn]()
	p := configtest.NewPool(tb, pool.Config{}, nil)
	lim := configtest.Limits(subscription.Limits{})
	for i := 0; i < n; i++ {
		c := p.Add(wstest.DiscardConn{}, pool.ConnOptions{ID: strconv.Itoa(i)})
		switch i % 3 {
		case 0:
			ix.SetUnfiltered(c, true)
		case 1:
			f, _ := subscription.NewFilter([]string{"binance"}, nil, nil, lim)
			if _, err := ix.Add(c, f, lim); err != nil {
				tb.Fatal(err)
			}
		case 2:
			f, _ := subscription.NewFilter(nil, []string{"BTC/USDT"}, []string{"trade", "ticker"}, lim)
			if _, err := ix.Add(c, f, lim); err != nil {
				tb.Fatal(err)
			}
			// an overlapping second filter: delivery must stay single
			f2, _ := subscription.NewFilter([]string{"binance"}, nil, []string{"trade"}, lim)
			if _, err := ix.Add(c, f2, lim); err != nil {
				tb.Fatal(err)
			}
		}
	}
	o := options(16)
	if len(fo) > 0 {
		o.FanOut = fo[0]
	}
	return dispatch.New(ix, o), p
}

// options are the default options (those of an empty configuration) with
// a queue of queue messages and snapshots off.
func options(queue int) dispatch.Options {
	o := dispatch.OptionsOf(config.Default())
	o.Queue, o.SnapshotKeys = queue, 0
	return o
}

var benchMsg = &dataflow.MarketData{Exchange: "binance", Symbol: "BTC/USDT", Type: "trade", Timestamp: 1723190400000,
	Data: []byte(`{"id":"123","price":"50000.1","quantity":"0.01","side":"buy","timestamp":1723190400000}`)}

func benchFanOut(b *testing.B, n int, workers ...int) {
	var fo []dispatch.FanOut
	if len(workers) > 0 {
		fo = append(fo, dispatch.FanOut{Workers: workers[0], ParallelMin: 4096, ChunkSize: 1024})
	}
	d, p := fanout(b, n, fo...)
	if got := d.Dispatch(benchMsg); got != n {
		b.Fatalf("dispatched to %d of %d", got, n)
	}
	wstest.Drain(p)
	b.ReportAllocs()
	b.ResetTimer()
	var inDispatch time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		d.Dispatch(benchMsg)
		inDispatch += time.Since(t0)
		wstest.Drain(p) // writes included
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/recipient")
	// Until Dispatch returns, every recipient's writer has been started: the
	// fan-out's contribution to the last recipient's latency.
	b.ReportMetric(float64(inDispatch.Microseconds())/float64(b.N), "µs-dispatch/op")
}

func BenchmarkFanOut1k(b *testing.B)  { benchFanOut(b, 1000) }
func BenchmarkFanOut10k(b *testing.B) { benchFanOut(b, 10000) }

// BenchmarkFanOut10kInline and BenchmarkFanOut10kParallel force parallel
// chunks off and on (2 workers), whatever the core count, for comparison in
// the same run.
func BenchmarkFanOut10kInline(b *testing.B)   { benchFanOut(b, 10000, 1) }
func BenchmarkFanOut10kParallel(b *testing.B) { benchFanOut(b, 10000, 2) }

// BenchmarkEncode is the once-per-message work: encoding the shared frame.
func BenchmarkEncode(b *testing.B) {
	d, _ := fanout(b, 0)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.Frame(benchMsg, now)
	}
}

// TestFanOutAllocatesNothingPerRecipient: dispatching one message to 1,000
// recipients allocates a small constant (the shared frame), not per
// recipient.
func TestFanOutAllocatesNothingPerRecipient(t *testing.T) {
	if wstest.RaceEnabled {
		t.Skip("the race detector allocates on its own; run without -race (make bench does)")
	}
	d, p := fanout(t, 1000)
	d.Dispatch(benchMsg)
	wstest.Drain(p)
	allocs := testing.AllocsPerRun(50, func() {
		d.Dispatch(benchMsg)
		wstest.Drain(p)
	})
	// The frame and its bytes are 2 allocations; writers are goroutines
	// started from a pre-bound func value. Allow slack for the runtime
	// growing its goroutine free list (on a busy machine writers of the
	// previous message may still be running, so new goroutines are made),
	// still a tenth of one per recipient.
	if allocs > 100 {
		t.Fatalf("%.0f allocations to fan one message out to 1000 recipients", allocs)
	}
	t.Logf("%.1f allocations per fan-out to 1000 recipients (%.4f per recipient)", allocs, allocs/1000)
}

// TestParallelFanOutDeliversOnce: in parallel chunks, every recipient gets
// each message exactly once, overlapping filters included.
func TestParallelFanOutDeliversOnce(t *testing.T) {
	tests := []struct {
		name                string
		workers, min, chunk int
	}{
		{name: "inline", workers: 1},
		{name: "parallel small chunks", workers: 4, min: 100, chunk: 7},
		{name: "parallel", workers: 2, min: 1000, chunk: 256},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const n, msgs = 3000, 20
			d, p := fanout(t, n, dispatch.FanOut{Workers: tc.workers, ParallelMin: tc.min, ChunkSize: tc.chunk})
			for i := 0; i < msgs; i++ {
				if got := d.Dispatch(benchMsg); got != n {
					t.Fatalf("message %d reached %d of %d recipients", i, got, n)
				}
			}
			// A queue empties before its last write is counted: wait for
			// the counts, and fail on any over msgs.
			wstest.Eventually(t, 5*time.Second, "every message written", func() bool {
				ok := true
				p.Each(func(c *pool.Conn) {
					if s := c.Stats(); s.MessagesSent > msgs {
						t.Fatalf("conn %s sent %d messages, want %d", s.ID, s.MessagesSent, msgs)
					} else if s.MessagesSent < msgs {
						ok = false
					}
				})
				return ok
			})
		})
	}
}

// TestParallelFanOutAllocatesPerChunkNotPerRecipient: the parallel path
// allocates a task per chunk of 1,024 recipients, nothing per recipient.
func TestParallelFanOutAllocatesPerChunkNotPerRecipient(t *testing.T) {
	if wstest.RaceEnabled {
		t.Skip("the race detector allocates on its own; run without -race (make bench does)")
	}
	const n = 10000
	d, p := fanout(t, n, dispatch.FanOut{Workers: 2, ParallelMin: 1000, ChunkSize: 1024})
	d.Dispatch(benchMsg)
	wstest.Drain(p)
	allocs := testing.AllocsPerRun(20, func() {
		d.Dispatch(benchMsg)
		wstest.Drain(p)
	})
	// As above: slack for writer goroutines made while the previous
	// message's are still running on a busy machine; a tenth of one per
	// recipient.
	if allocs > n/10 {
		t.Fatalf("%.0f allocations to fan one message out to %d recipients in parallel", allocs, n)
	}
	t.Logf("%.1f allocations per parallel fan-out to %d recipients (%.4f per recipient)", allocs, n, allocs/n)
}
