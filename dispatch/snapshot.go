package proxy

import (
	"sync"
	"sync/atomic"
	"time"

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
// A session keeps the history of what it was subscribed to and from which
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

// EnableSnapshots makes the dispatcher remember up to maxKeys latest-wins
// keys. Call before Run.
func (d *Dispatcher) EnableSnapshots(maxKeys int) {
	st := &snapStore{max: int64(maxKeys)}
	for i := range st.shards {
		st.shards[i].m = make(map[uint64]*snapEntry)
	}
	d.latest = st
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

// maxEndedCoverage bounds the history of ended coverages kept per session;
// beyond it the oldest are forgotten (a re-subscription after heavy churn
// may then repeat a message the client saw before unsubscribing).
const maxEndedCoverage = 32

func (ss *session) snapshots() bool { return ss.s.disp.latest != nil }

func (ss *session) covered(e *snapEntry) bool {
	for i := range ss.cover {
		c := &ss.cover[i]
		if c.since < e.seq && (c.until == 0 || e.seq <= c.until) &&
			(c.all || c.f.Matches(e.exchange, e.typ, e.symbol)) {
			return true
		}
	}
	return false
}

func (ss *session) endCoverage(match func(c *coverage) bool, b uint64) {
	ended := 0
	for i := range ss.cover {
		c := &ss.cover[i]
		if c.until == 0 && match(c) {
			c.until = b
		}
		if c.until != 0 {
			ended++
		}
	}
	for ended > maxEndedCoverage {
		for i := range ss.cover {
			if ss.cover[i].until != 0 {
				ss.cover = append(ss.cover[:i], ss.cover[i+1:]...)
				break
			}
		}
		ended--
	}
}

// addFilter adds f to the index and records from when it applies.
func (ss *session) addFilter(f subscription.Filter) (id string, err error) {
	if !ss.snapshots() {
		return ss.s.index.Add(ss.c, f, ss.s.limits)
	}
	ss.s.disp.fenced(func(b uint64) {
		id, err = ss.s.index.Add(ss.c, f, ss.s.limits)
		if err == nil {
			ss.cover = append(ss.cover, coverage{id: id, f: f, since: b})
		}
	})
	return id, err
}

func (ss *session) removeFilter(id string) (ok bool) {
	if !ss.snapshots() {
		return ss.s.index.Remove(ss.c, id)
	}
	ss.s.disp.fenced(func(b uint64) {
		if ok = ss.s.index.Remove(ss.c, id); ok {
			ss.endCoverage(func(c *coverage) bool { return !c.all && c.id == id }, b)
		}
	})
	return ok
}

func (ss *session) removeAllFilters() {
	if !ss.snapshots() {
		ss.s.index.RemoveAll(ss.c)
		return
	}
	ss.s.disp.fenced(func(b uint64) {
		ss.s.index.RemoveAll(ss.c)
		ss.endCoverage(func(c *coverage) bool { return !c.all }, b)
	})
}

func (ss *session) setUnfiltered(on bool) {
	if !ss.snapshots() {
		ss.s.index.SetUnfiltered(ss.c, on)
		return
	}
	ss.s.disp.fenced(func(b uint64) {
		ss.s.index.SetUnfiltered(ss.c, on)
		if on {
			ss.cover = append(ss.cover, coverage{all: true, since: b})
		} else {
			ss.endCoverage(func(c *coverage) bool { return c.all }, b)
		}
	})
}

// sendSnapshot queues the remembered frames that f matches (nil: all) and
// the client has not received yet, within the bounds above. Call after
// queuing the "subscribed" reply. It runs on the session's read loop and
// holds no lock the fan-out needs for more than one shard.
func (ss *session) sendSnapshot(f *subscription.Filter) {
	if !ss.snapshots() {
		return
	}
	st := ss.s.disp.latest
	now := time.Now()
	if !ss.snapOn {
		rate := float64(ss.s.cfg.SnapshotRate)
		ss.snapRate, ss.snapOn = newBucket(rate, int(rate), now), true
	}
	ss.snapRate.refill(now)
	tokens := int(ss.snapRate.tokens)
	// Frames dispatched after b reach the client live (its coverage is in
	// place): only older ones are the snapshot's.
	b := ss.s.disp.seq.Load()
	ingest := now.UnixNano()
	var visited, sent, truncated int
	room := true
	first := ss.snapNext
	ss.snapNext++
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
			if e.seq > b || (f != nil && !f.Matches(e.exchange, e.typ, e.symbol)) || ss.covered(e) {
				continue
			}
			if room && tokens >= snapFrameCost {
				sf := *e.frame
				sf.IngestAt = ingest // latency is measured from the snapshot, not the original tick
				if ss.c.Offer(&sf) {
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
	ss.snapRate.tokens = float64(tokens)
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
	ss.cover = append(ss.cover, c)
	ss.endCoverage(func(*coverage) bool { return false }, b) // prune the history
}
