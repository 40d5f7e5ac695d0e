package subscription_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsproxy/internal/configtest"
	"wsproxy/subscription"
)

var (
	benchExchanges = []string{"binance", "okx", "bybit"}
	benchSymbols   = func() []string {
		out := make([]string, 100)
		for i := range out {
			out[i] = fmt.Sprintf("COIN%dUSDT", i)
		}
		return out
	}()
)

type benchMsg struct{ exchange, dataType, symbol string }

func benchMessages(r *rand.Rand, n int) []benchMsg {
	out := make([]benchMsg, n)
	for i := range out {
		out[i] = benchMsg{
			benchExchanges[r.IntN(len(benchExchanges))],
			subscription.DataTypes[r.IntN(len(subscription.DataTypes))],
			benchSymbols[r.IntN(len(benchSymbols))],
		}
	}
	return out
}

// benchFilter returns a filter from a mix resembling the frontend's: mostly
// one market on one exchange, some watch lists, a few broad filters.
func benchFilter(tb testing.TB, r *rand.Rand) (f subscription.Filter, unfiltered bool) {
	ex := []string{benchExchanges[r.IntN(len(benchExchanges))]}
	sym := []string{benchSymbols[r.IntN(len(benchSymbols))]}
	switch p := r.IntN(100); {
	case p < 40: // a chart: trades and ticker of one market
		return mustFilter(tb, ex, sym, []string{"trade", "ticker"}), false
	case p < 60: // a watch list: tickers of several symbols anywhere
		return mustFilter(tb, nil, pick(r, benchSymbols, 8), []string{"ticker"}), false
	case p < 70: // candles of one market
		return mustFilter(tb, ex, sym, []string{"kline"}), false
	case p < 80: // one exchange, everything
		return mustFilter(tb, ex, nil, nil), false
	case p < 90: // one data type, everywhere
		return mustFilter(tb, nil, nil, []string{subscription.DataTypes[r.IntN(len(subscription.DataTypes))]}), false
	default:
		return subscription.Filter{}, true
	}
}

func benchIndex(tb testing.TB, n int) *subscription.Index[*sub] {
	tb.Helper()
	r := rand.New(rand.NewPCG(42, uint64(n)))
	ix := subscription.NewIndex[*sub]()
	for _, s := range newSubs(n) {
		for range 1 + r.IntN(2) {
			f, unfiltered := benchFilter(tb, r)
			if unfiltered {
				ix.SetUnfiltered(s, true)
				break
			}
			mustAdd(tb, ix, s, f)
		}
	}
	return ix
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			ix := benchIndex(b, n)
			msgs := benchMessages(rand.New(rand.NewPCG(1, 1)), 1024)
			b.ReportAllocs()
			recipients := 0
			b.ResetTimer()
			for i := range b.N {
				m := msgs[i&1023]
				res := ix.Match(m.exchange, m.dataType, m.symbol)
				recipients += res.Len()
			}
			b.ReportMetric(float64(recipients)/float64(b.N), "recipients/op")
		})
	}
}

// BenchmarkMatchDeliver adds what a dispatcher does with the result: visit
// every entry and deduplicate with a per-message stamp.
func BenchmarkMatchDeliver(b *testing.B) {
	ix := benchIndex(b, 10_000)
	msgs := benchMessages(rand.New(rand.NewPCG(1, 1)), 1024)
	b.ReportAllocs()
	delivered := 0
	b.ResetTimer()
	for i := range b.N {
		m := msgs[i&1023]
		res := ix.Match(m.exchange, m.dataType, m.symbol)
		seq := uint64(i + 1)
		res.ForEach(func(s *sub) {
			if s.stamp != seq {
				s.stamp = seq
				delivered++
			}
		})
	}
	b.ReportMetric(float64(delivered)/float64(b.N), "deliveries/op")
}

func BenchmarkMatchParallel(b *testing.B) {
	ix := benchIndex(b, 10_000)
	msgs := benchMessages(rand.New(rand.NewPCG(1, 1)), 1024)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(1) * 97)
		n := 0
		for pb.Next() {
			m := msgs[i&1023]
			res := ix.Match(m.exchange, m.dataType, m.symbol)
			n += res.Len()
			i++
		}
		_ = n
	})
}

// BenchmarkMatchDuringChurn measures Match while a writer keeps adding and
// removing filters on the same index. B/op counts the writer's allocations
// too; Match itself allocates nothing.
func BenchmarkMatchDuringChurn(b *testing.B) {
	ix := benchIndex(b, 10_000)
	msgs := benchMessages(rand.New(rand.NewPCG(1, 1)), 1024)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		r := rand.New(rand.NewPCG(9, 9))
		churn := newSubs(500)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := churn[i%len(churn)]
			ix.RemoveSubscriber(s)
			f, _ := benchFilter(b, r)
			mustAdd(b, ix, s, f)
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		m := msgs[i&1023]
		res := ix.Match(m.exchange, m.dataType, m.symbol)
		_ = res.Len()
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
}

// burst runs fn(i) for i in [0, n) on workers goroutines, as n connections
// arriving at once would.
func burst(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

const burstSize, burstWorkers = 20_000, 64

// benchBursts measures operations that arrive in bursts: it runs at least b.N
// operations as bursts of burstSize, spread over workers goroutines, each
// burst on fresh state built by setup (not measured). ns/op, B/op and
// allocs/op are per operation (one connection); ms/burst is the time to
// absorb a whole burst.
func benchBursts(b *testing.B, workers int, setup func() func(i int)) {
	b.ReportAllocs()
	b.StopTimer()
	bursts := (b.N + burstSize - 1) / burstSize
	var elapsed time.Duration
	var mallocs, bytes uint64
	var before, after runtime.MemStats
	for range bursts {
		op := setup()
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		start := time.Now()
		burst(burstSize, workers, op)
		elapsed += time.Since(start)
		b.StopTimer()
		runtime.ReadMemStats(&after)
		mallocs += after.Mallocs - before.Mallocs
		bytes += after.TotalAlloc - before.TotalAlloc
	}
	ops := float64(bursts * burstSize)
	b.ReportMetric(float64(elapsed.Nanoseconds())/ops, "ns/op")
	b.ReportMetric(float64(bytes)/ops, "B/op")
	b.ReportMetric(float64(mallocs)/ops, "allocs/op")
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(bursts), "ms/burst")
}

// BenchmarkAddUnfiltered20k: 20,000 connections that never subscribe (the
// deployed frontend) arrive at once on an empty index; all of them land on
// the same key. One op is one connection.
func BenchmarkAddUnfiltered20k(b *testing.B) {
	for _, workers := range []int{burstWorkers, 1} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			subs := newSubs(burstSize)
			benchBursts(b, workers, func() func(int) {
				ix := subscription.NewIndex[*sub]()
				return func(i int) { ix.SetUnfiltered(subs[i], true) }
			})
		})
	}
}

// BenchmarkSubscribeBurst20k: 20,000 connections each add one filter from the
// mix at once on an empty index. One op is one connection.
func BenchmarkSubscribeBurst20k(b *testing.B) {
	subs := newSubs(burstSize)
	r := rand.New(rand.NewPCG(5, 5))
	filters := make([]subscription.Filter, burstSize)
	for i := range filters {
		filters[i], _ = benchFilter(b, r)
	}
	benchBursts(b, burstWorkers, func() func(int) {
		ix := subscription.NewIndex[*sub]()
		return func(i int) {
			if _, err := ix.Add(subs[i], filters[i], configtest.Limits(subscription.Limits{})); err != nil {
				b.Error(err)
			}
		}
	})
}

// BenchmarkDisconnect20k: 20,000 unfiltered connections leave at once (a
// load balancer drain), concurrently or one after another. One op is one
// connection.
func BenchmarkDisconnect20k(b *testing.B) {
	for _, workers := range []int{burstWorkers, 1} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			subs := newSubs(burstSize)
			benchBursts(b, workers, func() func(int) {
				ix := subscription.NewIndex[*sub]()
				for _, s := range subs {
					ix.SetUnfiltered(s, true)
				}
				return func(i int) { ix.RemoveSubscriber(subs[i]) }
			})
		})
	}
}

// BenchmarkAddRemove: one op is one connection adding a filter and removing
// it again on an index of 10,000 subscribers, from several goroutines.
func BenchmarkAddRemove(b *testing.B) {
	ix := benchIndex(b, 10_000)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 3))
		s := &sub{name: "churn"}
		for pb.Next() {
			f, unfiltered := benchFilter(b, r)
			if unfiltered {
				ix.SetUnfiltered(s, true)
				ix.SetUnfiltered(s, false)
				continue
			}
			id := mustAdd(b, ix, s, f)
			ix.Remove(s, id)
		}
	})
}

func BenchmarkNewFilter(b *testing.B) {
	ex, sym, types := []string{"Binance", "okx"}, []string{"btc/usdt", "ETH-USDT", "SOLUSDT"}, []string{"trade", "kline"}
	b.ReportAllocs()
	for range b.N {
		if _, err := subscription.NewFilter(ex, sym, types, configtest.Limits(subscription.Limits{})); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeSymbol(b *testing.B) {
	for _, s := range []string{"BTCUSDT", "btc/usdt"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				sinkString = subscription.NormalizeSymbol(s)
			}
		})
	}
}
