package observe

import (
	"sync"
	"sync/atomic"
	"time"

	"wsproxy/compat"
	"wsproxy/dataflow"
	"wsproxy/pool"
)

// StatsMaxAge is how old the STATS answered to a client's getStats may be:
// at most one computation and one encoding per StatsMaxAge, however many
// clients ask, so that getStats costs a client's fair share of a copy and
// never waits for a lock the delivery path takes. A connection or
// subscription change since the last computation makes the next getStats
// compute afresh, so that the counts a client sees include its own and its
// neighbours' changes (the legacy servers answer exactly).
const StatsMaxAge = 250 * time.Millisecond

// StatsCache holds the latest STATS and its encoded getStats reply. Safe
// for concurrent use: one caller refreshes, the others take the current
// one.
type StatsCache struct {
	// Build computes STATS and the legacy part of the reply.
	Build func(now time.Time) (Stats, compat.LegacyStats)

	refresh sync.Mutex // held by the caller computing a new snapshot
	cur     atomic.Pointer[statsSnap]
	builds  atomic.Uint64
	gen     atomic.Uint64 // connection and subscription changes
}

// Changed records a connection or subscription change.
func (c *StatsCache) Changed() { c.gen.Add(1) }

type statsSnap struct {
	at    int64 // unix ns
	gen   uint64
	stats Stats
	reply []byte // the "stats" frame, restamped per send
	err   error
	// last is the reply stamped with the latest millisecond asked for:
	// the clients asking within one millisecond share one frame.
	last atomic.Pointer[stampedReply]
}

type stampedReply struct {
	ts int64
	f  *pool.Frame
}

// Stats returns STATS as of at most StatsMaxAge ago.
func (c *StatsCache) Stats() Stats { return c.snapshot().stats }

// Builds reports how many times STATS were computed.
func (c *StatsCache) Builds() uint64 { return c.builds.Load() }

func (c *StatsCache) snapshot() *statsSnap {
	cur := c.cur.Load()
	if c.fresh(cur) {
		return cur
	}
	if !c.refresh.TryLock() {
		if cur != nil && cur.gen == c.gen.Load() {
			return cur // someone is refreshing an old one: it will do
		}
		c.refresh.Lock()
	}
	defer c.refresh.Unlock()
	if cur = c.cur.Load(); c.fresh(cur) {
		return cur
	}
	gen := c.gen.Load()
	now := time.Now()
	st, legacy := c.Build(now)
	reply, err := compat.AppendStatsReply(nil, legacy, st, 0)
	cur = &statsSnap{at: now.UnixNano(), gen: gen, stats: st, reply: reply, err: err}
	c.cur.Store(cur)
	c.builds.Add(1)
	return cur
}

// Reply returns the getStats reply frame stamped ts (Unix ms). Frames are
// immutable once queued, so one serves every client asking within the same
// millisecond.
func (c *StatsCache) Reply(ts int64) (*pool.Frame, error) {
	snap := c.snapshot()
	if snap.err != nil {
		return nil, snap.err
	}
	if r := snap.last.Load(); r != nil && r.ts == ts {
		return r.f, nil
	}
	f := pool.NewControl(compat.Restamp(nil, snap.reply, ts))
	snap.last.Store(&stampedReply{ts: ts, f: f})
	return f, nil
}

func (c *StatsCache) fresh(cur *statsSnap) bool {
	return cur != nil && cur.gen == c.gen.Load() && time.Now().UnixNano()-cur.at < int64(StatsMaxAge)
}

// SourcesDownTooLong reports whether a source has been disconnected for
// longer than after (health.source_down_unhealthy_after). A source that
// never connected counts from start.
func SourcesDownTooLong(sources []dataflow.SourceStatus, start time.Time, after time.Duration, now time.Time) bool {
	for _, src := range sources {
		if src.Connected {
			continue
		}
		since := max(src.Since, start.UnixMilli())
		if now.UnixMilli()-since > after.Milliseconds() {
			return true
		}
	}
	return false
}
