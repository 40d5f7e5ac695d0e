package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"wsproxy/compat"
	"wsproxy/observe"
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

// statsCache holds the latest STATS and its encoded reply. Safe for
// concurrent use: one caller refreshes, the others take the current one.
type statsCache struct {
	refresh sync.Mutex // held by the caller computing a new snapshot
	cur     atomic.Pointer[statsSnap]
	builds  atomic.Uint64
	gen     atomic.Uint64 // connection and subscription changes
}

// changed records a connection or subscription change.
func (c *statsCache) changed() { c.gen.Add(1) }

type statsSnap struct {
	at    int64 // unix ns
	gen   uint64
	stats observe.Stats
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

// CachedStats returns STATS as of at most StatsMaxAge ago.
func (s *Server) CachedStats() observe.Stats { return s.statsSnapshot().stats }

// StatsBuilds reports how many times the cached STATS were computed.
func (s *Server) StatsBuilds() uint64 { return s.stats.builds.Load() }

func (s *Server) statsSnapshot() *statsSnap {
	c := &s.stats
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
	st := s.Stats()
	reply, err := compat.AppendStatsReply(nil, s.legacyStats(now), st, 0)
	cur = &statsSnap{at: now.UnixNano(), gen: gen, stats: st, reply: reply, err: err}
	c.cur.Store(cur)
	c.builds.Add(1)
	return cur
}

// statsReply returns the getStats reply frame stamped ts (Unix ms). Frames
// are immutable once queued, so one serves every client asking within the
// same millisecond.
func (s *Server) statsReply(ts int64) (*pool.Frame, error) {
	snap := s.statsSnapshot()
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

func (c *statsCache) fresh(cur *statsSnap) bool {
	return cur != nil && cur.gen == c.gen.Load() && time.Now().UnixNano()-cur.at < int64(StatsMaxAge)
}
