package proxy

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/alitto/pond/v2"

	"wsproxy/pool"
	"wsproxy/subscription"
)

// Fan-out of one message to a large recipient set is split into chunks that
// run in parallel on a bounded worker pool; small sets are served inline,
// where a hand-off would cost more than it saves. The dispatcher waits for
// every chunk of a message before the next message, so per-connection order
// holds, and Conn.Enqueue's sequence check keeps a recipient listed under
// several keys (overlapping filters) from receiving a message twice even when
// two chunks race.
const (
	// DefaultParallelMin is the recipient count from which fan-out runs in
	// parallel chunks.
	DefaultParallelMin = 4096
	// DefaultChunkSize is the recipients per parallel chunk.
	DefaultChunkSize = 1024
)

type fanOut struct {
	workers  pond.Pool // nil: always inline
	min      int
	chunk    int
	wg       sync.WaitGroup
	enqueued atomic.Int64
}

func newFanOut(workers, parallelMin, chunk int) *fanOut {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if parallelMin <= 0 {
		parallelMin = DefaultParallelMin
	}
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	fo := &fanOut{min: parallelMin, chunk: chunk}
	if workers > 1 {
		fo.workers = pond.NewPool(workers)
	}
	return fo
}

// run enqueues f for every match and returns how many accepted it. Only the
// dispatcher goroutine calls it.
func (fo *fanOut) run(m *subscription.Matches[*pool.Conn], f *pool.Frame, seq uint64) int {
	if fo.workers == nil || m.Len() < fo.min {
		n := 0
		m.ForEach(func(c *pool.Conn) {
			if c.Enqueue(f, seq) {
				n++
			}
		})
		return n
	}
	fo.enqueued.Store(0)
	m.Chunks(fo.chunk, func(cs []*pool.Conn) {
		fo.wg.Add(1)
		if err := fo.workers.Go(func() { fo.enqueueChunk(cs, f, seq) }); err != nil {
			fo.enqueueChunk(cs, f, seq) // pool stopped: do it here
		}
	})
	fo.wg.Wait()
	return int(fo.enqueued.Load())
}

func (fo *fanOut) enqueueChunk(cs []*pool.Conn, f *pool.Frame, seq uint64) {
	n := 0
	for _, c := range cs {
		if c.Enqueue(f, seq) {
			n++
		}
	}
	fo.enqueued.Add(int64(n))
	fo.wg.Done()
}

// SetParallel tunes parallel fan-out: workers (0: GOMAXPROCS; 1: never
// parallel), the recipient count from which it applies (0:
// DefaultParallelMin) and the chunk size (0: DefaultChunkSize). Call before
// Run.
func (d *Dispatcher) SetParallel(workers, parallelMin, chunk int) {
	d.fan = newFanOut(workers, parallelMin, chunk)
}
