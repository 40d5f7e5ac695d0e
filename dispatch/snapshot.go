package dispatch

import (
	"sync"
	"sync/atomic"
	"time"

	"wsproxy/internal/tokenbucket"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// Snapshot on subscribe.
//
// The dispatcher remembers the latest frame of every latest-wins key
// (exchange, type, symbol). When a client subscribes, the frames its new
// subscription matches are queued to it right after the "subscribed" reply,
// so that it shows prices at once instead of waiting for the next tick.
//
// Exactly once: every message has a dispatch sequence number, and every
// change of a connection's subscriptions happens under the dispatcher's
// fence, so its boundary (the last sequence dispatched before it) is exact.
// A Subscriber keeps the history of what it was subscribed to and from which
// boundary (coverage); a remembered frame is sent only if no coverage of the
// connection matched it when it was dispatched, i.e. if the client has not
// already received it live.
//
// Off the hot path: the scan does not take the fence. The store is split
// into shards with a lock each; the dispatcher updates a key's entry under
// its shard's lock before it fans the frame out, and a snapshot queues a
// key's frame under the same lock. So either the snapshot queues the older
// frame before the live one is fanned out, or it finds the newer one, which
// the live delivery brings, and skips it: a newer frame is never followed by
// an older one. The dispatcher waits at most for one shard's scan.
//
// Bounded: a snapshot queues at most what fits in three quarters of the
// client's queue (pool.Conn.Offer), the latest frame per key; matching
// frames left out are counted (snapshotTruncated). The work is rate-limited
// per connection (snapshot_rate); keys left unexamined are counted
// (snapshotRateLimited).

// snapShards is the number of independently locked parts of the store.
const snapShards = 256

// snapFrameCost is what queuing a snapshot frame costs against
// snapshot_rate, against 1 for examining a key.
const snapFrameCost = 10

// snapEntry is the latest frame of one key. Guarded by its shard's lock.
type snapEntry struct {
	exchange, typ, symbol string // normalised as the index expects
	frame                 *pool.Frame
	seq                   uint64
}

type snapShard struct {
	mu sync.Mutex
	m  map[uint64]*snapEntry
}

// snapStore is the latest-value store behind snapshots. Safe for
// concurrent use.
type snapStore struct {
	shards   [snapShards]snapShard
	max      int64
	keys     atomic.Int64
	overflow atomic.Uint64

	sent, truncated, limited atomic.Uint64
}

// SnapshotCounts says what snapshots on subscribe did.
type SnapshotCounts struct {
	// SnapshotSent counts frames queued by snapshots.
	SnapshotSent uint64 `json:"snapshotSent"`
	// SnapshotTruncated counts frames a snapshot matched but did not queue
	// because the client's queue had no room for them.
	SnapshotTruncated uint64 `json:"snapshotTruncated"`
	// SnapshotRateLimited counts remembered keys a snapshot did not examine
	// because the connection had used up its snapshot_rate.
	SnapshotRateLimited uint64 `json:"snapshotRateLimited"`
}

func (st *snapStore) counts() SnapshotCounts {
	return SnapshotCounts{SnapshotSent: st.sent.Load(), SnapshotTruncated: st.truncated.Load(), SnapshotRateLimited: st.limited.Load()}
}

func newSnapStore(maxKeys int) *snapStore {
	st := &snapStore{max: int64(maxKeys)}
	for i := range st.shards {
		st.shards[i].m = make(map[uint64]*snapEntry)
	}
	return st
}

func (st *snapStore) remember(f *pool.Frame, seq uint64, exchange, typ, symbol string) {
	sh := &st.shards[f.Key%snapShards]
	sh.mu.Lock()
	e := sh.m[f.Key]
	if e == nil {
		if st.keys.Load() >= st.max {
			sh.mu.Unlock()
			st.overflow.Add(1)
			return
		}
		st.keys.Add(1)
		e = &snapEntry{exchange: exchange, typ: typ, symbol: symbol}
		sh.m[f.Key] = e
	}
	e.frame, e.seq = f, seq
	sh.mu.Unlock()
}

// fenced runs fn with dispatching paused; b is the sequence number of the
// last message dispatched before fn. fn must be short: the dispatcher waits.
func (d *Dispatcher) fenced(fn func(b uint64)) {
	d.fence.Lock()
	defer d.fence.Unlock()
	fn(d.seq.Load())
}

// coverage is one period during which a connection received the messages
// matching a filter (or all messages): those with since < seq <= until.
type coverage struct {
	id    string // filter id; "" for the unfiltered mark
	all   bool
	f     subscription.Filter
	since uint64
	until uint64 // 0: still active
}

// maxEndedCoverage bounds the history of ended coverages kept per
// subscriber; beyond it the oldest are forgotten (a re-subscription after
// heavy churn may then repeat a message the client saw before
// unsubscribing).
const maxEndedCoverage = 32

// Subscriber is one connection's side of the snapshot bookkeeping: what it
// was subscribed to and from which boundary (coverage), and its snapshot
// budget. Only the connection's read loop uses it.
type Subscriber struct {
	c     *pool.Conn
	cover []coverage
	rate  tokenbucket.Bucket // snapshot work
	rated bool               // rate is set up
	next  int                // shard the next snapshot starts at
	per   int                // snapshot_rate, keys per second
}

// NewSubscriber returns the bookkeeping of c, whose snapshots may cost up
// to rate keys per second (snapshot_rate).
func NewSubscriber(c *pool.Conn, rate int) *Subscriber { return &Subscriber{c: c, per: rate} }

// Snapshots reports whether snapshots on subscribe are on.
func (d *Dispatcher) Snapshots() bool { return d.latest != nil }

func (sub *Subscriber) covered(e *snapEntry) bool {
	for i := range sub.cover {
		c := &sub.cover[i]
		if c.since < e.seq && (c.until == 0 || e.seq <= c.until) &&
			(c.all || c.f.Matches(e.exchange, e.typ, e.symbol)) {
			return true
		}
	}
	return false
}

func (sub *Subscriber) endCoverage(match func(c *coverage) bool, b uint64) {
	ended := 0
	for i := range sub.cover {
		c := &sub.cover[i]
		if c.until == 0 && match(c) {
			c.until = b
		}
		if c.until != 0 {
			ended++
		}
	}
	for ended > maxEndedCoverage {
		for i := range sub.cover {
			if sub.cover[i].until != 0 {
				sub.cover = append(sub.cover[:i], sub.cover[i+1:]...)
				break
			}
		}
		ended--
	}
}

// AddFilter adds f to the index for sub's connection and records from when
// it applies.
func (d *Dispatcher) AddFilter(sub *Subscriber, f subscription.Filter, lim subscription.Limits) (id string, err error) {
	if !d.Snapshots() {
		return d.index.Add(sub.c, f, lim)
	}
	d.fenced(func(b uint64) {
		id, err = d.index.Add(sub.c, f, lim)
		if err == nil {
			sub.cover = append(sub.cover, coverage{id: id, f: f, since: b})
		}
	})
	return id, err
}

// RemoveFilter removes filter id of sub's connection; false if it has none
// of that id.
func (d *Dispatcher) RemoveFilter(sub *Subscriber, id string) (ok bool) {
	if !d.Snapshots() {
		return d.index.Remove(sub.c, id)
	}
	d.fenced(func(b uint64) {
		if ok = d.index.Remove(sub.c, id); ok {
			sub.endCoverage(func(c *coverage) bool { return !c.all && c.id == id }, b)
		}
	})
	return ok
}

// RemoveAllFilters removes every filter of sub's connection.
func (d *Dispatcher) RemoveAllFilters(sub *Subscriber) {
	if !d.Snapshots() {
		d.index.RemoveAll(sub.c)
		return
	}
	d.fenced(func(b uint64) {
		d.index.RemoveAll(sub.c)
		sub.endCoverage(func(c *coverage) bool { return !c.all }, b)
	})
}

// SetUnfiltered turns delivery of every message to sub's connection on or
// off.
func (d *Dispatcher) SetUnfiltered(sub *Subscriber, on bool) {
	if !d.Snapshots() {
		d.index.SetUnfiltered(sub.c, on)
		return
	}
	d.fenced(func(b uint64) {
		d.index.SetUnfiltered(sub.c, on)
		if on {
			sub.cover = append(sub.cover, coverage{all: true, since: b})
		} else {
			sub.endCoverage(func(c *coverage) bool { return c.all }, b)
		}
	})
}

// SendSnapshot queues to sub's connection the remembered frames that f
// matches (nil: all) and the client has not received yet, within the
// bounds above. Call after queuing the "subscribed" reply. It runs on the
// connection's read loop and holds no lock the fan-out needs for more than
// one shard.
func (d *Dispatcher) SendSnapshot(sub *Subscriber, f *subscription.Filter) {
	st := d.latest
	if st == nil {
		return
	}
	now := time.Now()
	if !sub.rated {
		rate := float64(sub.per)
		sub.rate, sub.rated = tokenbucket.New(rate, int(rate), now), true
	}
	sub.rate.Refill(now)
	tokens := int(sub.rate.Tokens)
	// Frames dispatched after b reach the client live (its coverage is in
	// place): only older ones are the snapshot's.
	b := d.seq.Load()
	ingest := now.UnixNano()
	var visited, sent, truncated int
	room := true
	first := sub.next
	sub.next++
scan:
	for i := 0; i < snapShards; i++ {
		sh := &st.shards[(first+i)%snapShards]
		sh.mu.Lock()
		for _, e := range sh.m {
			if tokens < 1 {
				sh.mu.Unlock()
				break scan
			}
			tokens--
			visited++
			if e.seq > b || (f != nil && !f.Matches(e.exchange, e.typ, e.symbol)) || sub.covered(e) {
				continue
			}
			if room && tokens >= snapFrameCost {
				sf := *e.frame
				sf.IngestAt = ingest // latency is measured from the snapshot, not the original tick
				if sub.c.Offer(&sf) {
					tokens -= snapFrameCost
					sent++
					continue
				}
				room = false
			}
			truncated++
		}
		sh.mu.Unlock()
	}
	sub.rate.Tokens = float64(tokens)
	unexamined := max(0, int(st.keys.Load())-visited)
	st.sent.Add(uint64(sent))
	st.truncated.Add(uint64(truncated))
	st.limited.Add(uint64(unexamined))
	if truncated > 0 || unexamined > 0 || b == 0 {
		// Not every frame went out (a later snapshot may send them), or
		// nothing was dispatched yet: the client holds nothing new.
		return
	}
	// The client now holds the latest frame, as of b, of every key f
	// matches: a later snapshot must not repeat them.
	c := coverage{all: f == nil, since: 0, until: b}
	if f != nil {
		c.f = *f
	}
	sub.cover = append(sub.cover, c)
	sub.endCoverage(func(*coverage) bool { return false }, b) // prune the history
}
