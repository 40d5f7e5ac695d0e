package compare_test

import (
	"fmt"
	"testing"
	"time"

	"wsproxy/tools/compare"
)

// BenchmarkMatcherPair measures the comparison cost of one message seen on
// both sides (parse, canonicalise, match), i.e. how fast a stream the tool
// keeps up with on one core.
func BenchmarkMatcherPair(b *testing.B) {
	sub, _ := compare.ParseSubscription("none")
	frames := make([][]byte, 1024)
	for i := range frames {
		frames[i] = frame("trade", "binance", "BTC/USDT", int64(1723190400000+i),
			fmt.Sprintf(`{"id":"%d","price":"50000.1","quantity":"0.01","side":"buy","timestamp":%d}`, i, 1723190400000+i))
	}
	m := compare.NewMatcher(sub, 0, 5)
	m.Open(t0)
	now := t0.Add(time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := frames[i%len(frames)]
		m.Observe(compare.Legacy, f, now)
		m.Observe(compare.Proxy, f, now)
	}
	b.StopTimer()
	if r := m.Report(100); r.Matched != b.N || !r.Pass {
		b.Fatalf("matched %d of %d", r.Matched, b.N)
	}
}
