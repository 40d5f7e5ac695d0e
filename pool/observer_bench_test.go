package pool_test

import (
	"testing"

	"wsproxy/internal/histogram"
	"wsproxy/pool"
)

// BenchmarkFanOut1kObserved is BenchmarkFanOut1k with and without the
// delivery latency histogram the proxy installs: the cost of one
// ObserveDelivery per delivered frame on the writers' path.
func BenchmarkFanOut1kObserved(b *testing.B) {
	for _, bc := range []struct {
		name string
		obs  pool.Observer
	}{{"no observer", nil}, {"histogram", histogram.New(nil)}} {
		b.Run(bc.name, func(b *testing.B) { benchFanOut1k(b, bc.obs) })
	}
}
