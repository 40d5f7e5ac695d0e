package proxy

import (
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
// already received it live. Snapshot frames are queued under the fence as
// well, so that a newer live frame of the same key is never queued before an
// older snapshot frame.

// snapEntry is the latest frame of one key. Guarded by Dispatcher.fence.
type snapEntry struct {
	exchange, typ, symbol string // normalised as the index expects
	frame                 *pool.Frame
	seq                   uint64
}

// EnableSnapshots makes the dispatcher remember up to maxKeys latest-wins
// keys. Call before Run.
func (d *Dispatcher) EnableSnapshots(maxKeys int) {
	d.latest = make(map[uint64]*snapEntry)
	d.maxKey = maxKeys
}

func (d *Dispatcher) rememberLocked(f *pool.Frame, seq uint64, exchange, typ, symbol string) {
	e := d.latest[f.Key]
	if e == nil {
		if len(d.latest) >= d.maxKey {
			d.overfl.Add(1)
			return
		}
		e = &snapEntry{exchange: exchange, typ: typ, symbol: symbol}
		d.latest[f.Key] = e
	}
	e.frame, e.seq = f, seq
}

// fenced runs fn with dispatching paused; b is the sequence number of the
// last message dispatched before fn.
func (d *Dispatcher) fenced(fn func(b uint64)) {
	d.fence.Lock()
	defer d.fence.Unlock()
	fn(d.seq)
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

// sendSnapshot queues every remembered frame that f matches (nil: all) and
// the client has not received yet. Call after queuing the "subscribed"
// reply.
func (ss *session) sendSnapshot(f *subscription.Filter) {
	if !ss.snapshots() {
		return
	}
	now := time.Now().UnixNano()
	ss.s.disp.fenced(func(b uint64) {
		for _, e := range ss.s.disp.latest {
			if f != nil && !f.Matches(e.exchange, e.typ, e.symbol) {
				continue
			}
			if ss.covered(e) {
				continue
			}
			sf := *e.frame
			sf.IngestAt = now // latency is measured from the snapshot, not the original tick
			ss.c.Enqueue(&sf, 0)
		}
		// The client now holds the latest frame, as of b, of every key f
		// matches: a later snapshot must not repeat them.
		if b == 0 {
			return // nothing dispatched yet, nothing held
		}
		c := coverage{all: f == nil, since: 0, until: b}
		if f != nil {
			c.f = *f
		}
		ss.cover = append(ss.cover, c)
		ss.endCoverage(func(*coverage) bool { return false }, b) // prune the history
	})
}
