package pool_test

import (
	"testing"
	"time"

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
		b.Run(bc.name, func(b *testing.B) {
			p := pool.New(pool.Config{}, bc.obs)
			conns := make([]*pool.Conn, 1000)
			for i := range conns {
				conns[i] = p.Add(&nullConn{}, pool.ConnOptions{})
			}
			f := dataFrame(1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, c := range conns {
					c.Enqueue(f, uint64(i+1))
				}
				for p.QueuedFrames() != 0 {
					time.Sleep(10 * time.Microsecond)
				}
			}
		})
	}
}
