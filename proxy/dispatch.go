package proxy

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wsproxy/compat"
	"wsproxy/dataflow"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// Dispatcher turns each pipeline message into one shared frame and queues it
// for every matching connection. It is the Sink of every source: Deliver
// never blocks (a full queue drops and counts), and one goroutine dispatches
// in arrival order, so per-symbol order is kept.
type Dispatcher struct {
	in    chan *dataflow.MarketData
	index *subscription.Index[*pool.Conn]
	seed  maphash.Seed

	// fence is held for each Dispatch and by subscription changes that
	// must know exactly which messages they precede (snapshot.go).
	fence  sync.Mutex
	seq    uint64                // guarded by fence
	latest map[uint64]*snapEntry // guarded by fence; nil when snapshots are off
	maxKey int
	overfl atomic.Uint64
	fan    *fanOut
	zshare bool // frames carry a shared per_message compression (deflate.go)

	forwarded atomic.Uint64
	dropped   atomic.Uint64
	lastAt    atomic.Int64
	done      chan struct{}
}

var _ dataflow.Sink = (*Dispatcher)(nil)

// NewDispatcher returns a dispatcher with a queue of queueLen messages.
func NewDispatcher(index *subscription.Index[*pool.Conn], queueLen int) *Dispatcher {
	return &Dispatcher{
		in:    make(chan *dataflow.MarketData, queueLen),
		index: index,
		seed:  maphash.MakeSeed(),
		done:  make(chan struct{}),
		fan:   newFanOut(0, 0, 0),
	}
}

// Deliver implements dataflow.Sink.
func (d *Dispatcher) Deliver(md *dataflow.MarketData) bool {
	select {
	case d.in <- md:
		return true
	default:
		d.dropped.Add(1)
		return false
	}
}

// Run dispatches until ctx ends, then drains what is already queued.
func (d *Dispatcher) Run(ctx context.Context) {
	defer close(d.done)
	for {
		select {
		case md := <-d.in:
			d.Dispatch(md)
		case <-ctx.Done():
			for {
				select {
				case md := <-d.in:
					d.Dispatch(md)
				default:
					return
				}
			}
		}
	}
}

// Done is closed when Run has returned.
func (d *Dispatcher) Done() <-chan struct{} { return d.done }

// Frame encodes md once into a shared data frame. It is exported for tools
// and benchmarks that drive the delivery side directly.
func (d *Dispatcher) Frame(md *dataflow.MarketData, now time.Time) *pool.Frame {
	b := compat.AppendData(make([]byte, 0, 160+len(md.Exchange)+len(md.Symbol)+2*len(md.Type)+len(md.Data)), md, now.UnixMilli())
	ingest := md.ReceivedAt * int64(time.Millisecond)
	if ingest <= 0 || ingest > now.UnixNano() {
		ingest = now.UnixNano()
	}
	var h maphash.Hash
	h.SetSeed(d.seed)
	h.WriteString(md.Exchange)
	h.WriteByte(0)
	h.WriteString(md.Type)
	h.WriteByte(0)
	h.WriteString(md.Symbol)
	f := &pool.Frame{Op: pool.OpText, Data: b, IngestAt: ingest, Key: h.Sum64(), LatestWins: LatestWins(md.Type)}
	if d.zshare {
		f.ShareCompression()
	}
	return f
}

// LatestWins reports whether a newer message of this data type supersedes an
// older one of the same (exchange, symbol): tickers, depth snapshots and
// kline updates. Trades never do.
func LatestWins(dataType string) bool {
	switch dataType {
	case "ticker", "depth", "orderbook":
		return true
	}
	return strings.HasPrefix(dataType, "kline")
}

// Dispatch delivers one message synchronously. Exported for the embedded API
// and benchmarks; sources go through Deliver.
func (d *Dispatcher) Dispatch(md *dataflow.MarketData) int {
	now := time.Now()
	f := d.Frame(md, now)
	exchange := strings.ToLower(md.Exchange)
	typ := strings.ToLower(md.Type)
	symbol := subscription.NormalizeSymbol(md.Symbol)
	d.fence.Lock()
	m := d.index.Match(exchange, typ, symbol)
	d.seq++
	seq := d.seq
	if f.LatestWins && d.latest != nil {
		d.rememberLocked(f, seq, exchange, typ, symbol)
	}
	n := d.fan.run(&m, f, seq)
	d.fence.Unlock()
	d.forwarded.Add(1)
	d.lastAt.Store(now.UnixMilli())
	return n
}

// DispatchStats is a snapshot of the dispatcher's counters.
type DispatchStats struct {
	Forwarded    uint64 `json:"messagesForwarded"`
	Dropped      uint64 `json:"dropped"`
	Queued       int    `json:"queued"`
	LastActivity int64  `json:"lastActivity"`
	// SnapshotOverflow counts latest-wins messages not remembered for
	// snapshots because snapshot_max_keys was reached.
	SnapshotOverflow uint64 `json:"snapshotOverflow"`
}

// Stats returns the counters.
func (d *Dispatcher) Stats() DispatchStats {
	return DispatchStats{Forwarded: d.forwarded.Load(), Dropped: d.dropped.Load(), Queued: len(d.in), LastActivity: d.lastAt.Load(),
		SnapshotOverflow: d.overfl.Load()}
}
