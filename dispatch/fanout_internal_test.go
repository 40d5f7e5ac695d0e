package dispatch

import (
	"strconv"
	"testing"

	"wsproxy/internal/configtest"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// TestChunkSizeIsHonoured: fanout.chunk_size sets the recipients per
// parallel task, also above the index's own block of 256.
func TestChunkSizeIsHonoured(t *testing.T) {
	const n = 10000
	ix := subscription.NewIndex[*pool.Conn]()
	p := configtest.NewPool(t, pool.Config{}, nil)
	for i := 0; i < n; i++ {
		ix.SetUnfiltered(p.Add(wstest.DiscardConn{}, pool.ConnOptions{ID: strconv.Itoa(i)}), true)
	}
	for _, chunk := range []int{100, 1024, 4000} {
		fo := newFanOut(FanOut{Workers: 2, ParallelMin: 1, ChunkSize: chunk})
		m := ix.Match("binance", "trade", "BTCUSDT")
		if got := fo.run(&m, &pool.Frame{Op: pool.OpText, Data: []byte("{}")}, uint64(chunk)); got != n {
			t.Fatalf("chunk %d: reached %d of %d", chunk, got, n)
		}
		// Every task but the last holds at least chunk recipients and
		// fewer than twice as many (pieces are not split further).
		lo, hi := uint64(n/(2*chunk)), uint64((n+chunk-1)/chunk)
		if got := fo.tasks.Load(); got < lo || got > hi {
			t.Errorf("chunk %d: %d tasks, want %d to %d", chunk, got, lo, hi)
		}
		fo.workers.StopAndWait()
	}
}
