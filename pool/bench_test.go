package pool_test

import (
	"testing"

	"wsproxy/internal/configtest"
	"wsproxy/pool"
)

// BenchmarkEnqueue measures one recipient's share of a fan-out: one enqueue
// of a shared frame, the writer included.
func BenchmarkEnqueue(b *testing.B) {
	p := configtest.NewPool(b, pool.Config{}, nil)
	c := p.Add(&nullConn{}, pool.ConnOptions{})
	f := dataFrame(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Enqueue(f, uint64(i+1))
	}
	b.StopTimer()
	waitFor(b, "drain", func() bool { return p.QueuedFrames() == 0 })
}

// BenchmarkFanOut1k enqueues one shared frame to 1,000 connections per op
// and waits for every writer to finish, so the socket writes are counted.
func BenchmarkFanOut1k(b *testing.B) { benchFanOut1k(b, nil) }

// benchFanOut1k is BenchmarkFanOut1k with obs as the pool's observer.
func benchFanOut1k(b *testing.B, obs pool.Observer) {
	p := configtest.NewPool(b, pool.Config{}, obs)
	conns := nullConns(p, 1000)
	f := dataFrame(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fanOut(p, conns, f, uint64(i+1))
	}
}

// BenchmarkEnqueueConflate is the worst case of conflation: a full queue of
// 100 latest-wins frames whose match is the oldest, so the newest-to-oldest
// scan runs its whole length.
func BenchmarkEnqueueConflate(b *testing.B) {
	p := configtest.NewPool(b, pool.Config{}, nil)
	c := p.Add(&nullConn{}, pool.ConnOptions{Hold: true})
	for i := 0; i < 100; i++ {
		c.Enqueue(&pool.Frame{Op: pool.OpText, Data: []byte("x"), IngestAt: 1, Key: uint64(i), LatestWins: true}, 0)
	}
	f := &pool.Frame{Op: pool.OpText, Data: []byte("y"), IngestAt: 1, Key: 0, LatestWins: true}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Enqueue(f, 0)
	}
}

// BenchmarkEnqueueDropOldest: a full queue and a trade, which drops the
// oldest frame.
func BenchmarkEnqueueDropOldest(b *testing.B) {
	p := configtest.NewPool(b, pool.Config{}, nil)
	c := p.Add(&nullConn{}, pool.ConnOptions{Hold: true})
	f := dataFrame(1)
	for i := 0; i < 100; i++ {
		c.Enqueue(f, 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Enqueue(f, 0)
	}
}
