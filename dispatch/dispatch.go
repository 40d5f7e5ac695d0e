// Package dispatch turns each pipeline message into one shared frame and
// queues it for every matching connection: the Dispatcher (the Sink of
// every source), the parallel fan-out of large recipient sets (fanout.go)
// and the latest-value store behind snapshots on subscribe, with the
// fenced subscription changes that keep snapshots exact (snapshot.go).
package dispatch

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wsproxy/compat"
	"wsproxy/config"
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
	seq    atomic.Uint64 // written under fence; read without it by snapshots
	latest *snapStore    // nil when snapshots are off
	fan    *fanOut
	zshare bool // frames carry a shared per_message compression

	latestWins LatestWinsSet
	metadata   bool // compat.forward_metadata

	forwarded atomic.Uint64
	dropped   atomic.Uint64
	// drainUntil (unix ns, 0: no bound) ends Run's final drain: messages
	// still queued then are discarded and counted in discarded.
	drainUntil atomic.Int64
	discarded  atomic.Uint64
	lastAt     atomic.Int64
	done       chan struct{}
}

var _ dataflow.Sink = (*Dispatcher)(nil)

// Options configure a Dispatcher; the proxy builds them from the
// configuration (config.ApplyDefaults has filled every key).
type Options struct {
	// Queue is how many messages may wait for the dispatcher (dispatch_queue).
	Queue int
	// LatestWins are the latest-wins data types (latest_wins_types).
	LatestWins LatestWinsSet
	// ForwardMetadata adds the pipeline's metadata to every data frame
	// (compat.forward_metadata).
	ForwardMetadata bool
	// SnapshotKeys > 0 remembers up to this many latest-wins keys for
	// snapshots on subscribe (snapshot_max_keys); 0: snapshots off.
	SnapshotKeys int
	// Compression makes every data frame carry a shared per_message
	// compression (compression.enabled).
	Compression bool
	// FanOut tunes parallel fan-out (fanout.*).
	FanOut FanOut
}

// FanOut tunes how one message reaches a large recipient set.
type FanOut struct {
	// Workers run parallel chunks; 0: GOMAXPROCS; 1: never parallel.
	Workers int
	// ParallelMin is the recipient count from which a message is fanned
	// out in parallel chunks.
	ParallelMin int
	// ChunkSize is the recipients per parallel chunk.
	ChunkSize int
}

// New returns a dispatcher over index.
func New(index *subscription.Index[*pool.Conn], o Options) *Dispatcher {
	d := &Dispatcher{
		in:         make(chan *dataflow.MarketData, o.Queue),
		index:      index,
		seed:       maphash.MakeSeed(),
		done:       make(chan struct{}),
		fan:        newFanOut(o.FanOut),
		zshare:     o.Compression,
		latestWins: o.LatestWins,
		metadata:   o.ForwardMetadata,
	}
	if o.SnapshotKeys > 0 {
		d.latest = newSnapStore(o.SnapshotKeys)
	}
	return d
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

// Run dispatches until ctx ends, then drains what is already queued, until
// the bound set by DrainUntil.
func (d *Dispatcher) Run(ctx context.Context) {
	defer close(d.done)
	for {
		select {
		case md := <-d.in:
			d.Dispatch(md)
		case <-ctx.Done():
			for {
				if until := d.drainUntil.Load(); until != 0 && time.Now().UnixNano() >= until {
					d.discardQueued()
					return
				}
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

// DrainUntil bounds the drain Run does after its context ends: messages
// still queued at t are discarded and counted (DispatchStats.Discarded).
// Call before cancelling Run's context.
func (d *Dispatcher) DrainUntil(t time.Time) { d.drainUntil.Store(t.UnixNano()) }

func (d *Dispatcher) discardQueued() {
	for {
		select {
		case <-d.in:
			d.discarded.Add(1)
		default:
			return
		}
	}
}

// Done is closed when Run has returned.
func (d *Dispatcher) Done() <-chan struct{} { return d.done }

// Frame encodes md once into a shared data frame. It is exported for tools
// and benchmarks that drive the delivery side directly.
func (d *Dispatcher) Frame(md *dataflow.MarketData, now time.Time) *pool.Frame {
	size := 160 + len(md.Exchange) + len(md.Symbol) + 2*len(md.Type) + len(md.Data) + len(md.TimestampRaw)
	var b []byte
	if d.metadata {
		b = compat.AppendDataWithMetadata(make([]byte, 0, size+len(md.Metadata)), md, now.UnixMilli())
	} else {
		b = compat.AppendData(make([]byte, 0, size), md, now.UnixMilli())
	}
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
	f := &pool.Frame{Op: pool.OpText, Data: b, IngestAt: ingest, Key: h.Sum64(), LatestWins: d.latestWins.Has(md.Type)}
	if d.zshare {
		f.ShareCompression()
	}
	return f
}

// LatestWinsSet says which data types are "latest wins": a newer message
// supersedes a queued older one of the same (exchange, type, symbol), and
// the latest one is remembered for snapshots. Entries compare
// case-insensitively; one ending in "*" is a prefix. Read-only once built.
type LatestWinsSet struct {
	exact    map[string]bool
	prefixes []string
}

// NewLatestWinsSet builds the set of types.
func NewLatestWinsSet(types []string) LatestWinsSet {
	ls := LatestWinsSet{exact: make(map[string]bool, len(types))}
	for _, t := range types {
		t = strings.ToLower(t)
		if p, ok := strings.CutSuffix(t, "*"); ok {
			ls.prefixes = append(ls.prefixes, p)
		} else {
			ls.exact[t] = true
		}
	}
	return ls
}

// Has reports whether dataType is latest-wins.
func (ls LatestWinsSet) Has(dataType string) bool {
	t := strings.ToLower(dataType)
	if ls.exact[t] {
		return true
	}
	for _, p := range ls.prefixes {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
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
	seq := d.seq.Add(1)
	if f.LatestWins && d.latest != nil {
		// Before the fan-out: a snapshot holding this key's shard either
		// queues the older frame first or sees this one and leaves it to
		// the live delivery (snapshot.go).
		d.latest.remember(f, seq, exchange, typ, symbol)
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
	// Discarded counts messages not delivered at shutdown because the
	// drain's share of the grace had run out (shutdown_drain_share).
	Discarded uint64 `json:"shutdownDiscarded"`
	SnapshotCounts
}

// Stats returns the counters.
func (d *Dispatcher) Stats() DispatchStats {
	st := DispatchStats{Forwarded: d.forwarded.Load(), Dropped: d.dropped.Load(), Queued: len(d.in), LastActivity: d.lastAt.Load(),
		Discarded: d.discarded.Load()}
	if d.latest != nil {
		st.SnapshotOverflow = d.latest.overflow.Load()
		st.SnapshotCounts = d.latest.counts()
	}
	return st
}

// OptionsOf returns the options cfg (defaults applied) gives.
func OptionsOf(cfg config.Config) Options {
	o := Options{
		Queue:           cfg.DispatchQueue,
		LatestWins:      NewLatestWinsSet(cfg.LatestWinsTypes),
		ForwardMetadata: cfg.Compat.ForwardMetadata,
		Compression:     cfg.Compression.Enabled,
		FanOut:          FanOut{Workers: cfg.FanOut.Workers, ParallelMin: cfg.FanOut.ParallelMin, ChunkSize: cfg.FanOut.ChunkSize},
	}
	if *cfg.SnapshotOnSubscribe {
		o.SnapshotKeys = cfg.SnapshotMaxKeys
	}
	return o
}
