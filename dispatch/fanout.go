package dispatch

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
type fanOut struct {
	workers  pond.Pool // nil: always inline
	min      int
	chunk    int
	wg       sync.WaitGroup
	enqueued atomic.Int64
	tasks    atomic.Uint64 // parallel chunks run, for tests
}

func newFanOut(o FanOut) *fanOut {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	fo := &fanOut{min: o.ParallelMin, chunk: o.ChunkSize}
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
	// The index hands out its lists in pieces of at most its own block
	// size: pieces are gathered until a chunk holds chunk recipients.
	var chunk [][]*pool.Conn
	size := 0
	submit := func() {
		cs := chunk
		chunk, size = nil, 0
		fo.wg.Add(1)
		fo.tasks.Add(1)
		if err := fo.workers.Go(func() { fo.enqueueChunk(cs, f, seq) }); err != nil {
			fo.enqueueChunk(cs, f, seq) // pool stopped: do it here
		}
	}
	m.Chunks(fo.chunk, func(cs []*pool.Conn) {
		chunk = append(chunk, cs)
		if size += len(cs); size >= fo.chunk {
			submit()
		}
	})
	if len(chunk) > 0 {
		submit()
	}
	fo.wg.Wait()
	return int(fo.enqueued.Load())
}

func (fo *fanOut) enqueueChunk(chunk [][]*pool.Conn, f *pool.Frame, seq uint64) {
	n := 0
	for _, cs := range chunk {
		for _, c := range cs {
			if c.Enqueue(f, seq) {
				n++
			}
		}
	}
	fo.enqueued.Add(int64(n))
	fo.wg.Done()
}
