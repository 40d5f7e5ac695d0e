package histogram

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The writer path calls ObserveDelivery once per delivered frame: compare it
// with a client_golang histogram holding the same exposition buckets.
func BenchmarkObserve(b *testing.B) {
	secs := make([]float64, len(DefaultBounds))
	for i, d := range DefaultBounds {
		secs[i] = d.Seconds()
	}
	vals := make([]time.Duration, 1024)
	for i := range vals {
		vals[i] = time.Duration(i*37%1000) * 20 * time.Microsecond
	}
	b.Run("histogram", func(b *testing.B) {
		h := New(nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				h.Observe(vals[i&1023])
				i++
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: secs})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				h.Observe(vals[i&1023].Seconds())
				i++
			}
		})
	})
}
