package pool

import (
	"sync"
	"time"
)

// Close code and reason for a client that cannot keep up (PROTOCOL.md).
const (
	CloseSlowConsumer       = 1008
	CloseReasonSlowConsumer = "Slow consumer"
)

// policeSlow is run by the pool's Run loop for every connection on each tick.
// It closes a connection that has stayed saturated past SlowConsumerMaxLag and
// closes the socket of one closed so at least CloseGrace ago. It reports
// whether c was aborted.
func (p *Pool) policeSlow(c *Conn, now int64) bool {
	if at := c.abortAt.Load(); at != 0 && now >= at && c.abortAt.CompareAndSwap(at, 0) {
		// A stalled client takes no close frame: a writer blocked in Write
		// returns once the socket is gone.
		c.abort()
		return true
	}
	if sat := c.satSince.Load(); sat != 0 && now-sat > p.cfg.SlowConsumerMaxLag.Nanoseconds() {
		c.closeSlow(now, time.Duration(now-sat))
	}
	return false
}

// closeSlow discards c's queue, queues a 1008 "Slow consumer" close frame and
// schedules the socket's hard close CloseGrace later.
func (c *Conn) closeSlow(now int64, lag time.Duration) {
	if !c.closeDiscarding(ReasonSlowConsumer, CloseSlowConsumer, CloseReasonSlowConsumer, now+c.p.cfg.CloseGrace.Nanoseconds()) {
		return
	}
	p := c.p
	p.slowClosed.Add(1)
	if ok, suppressed := p.slowLog.allow(now); ok {
		p.log.Warn().Str("conn_id", c.id).Str("remote", c.remote).Dur("saturated_for", lag).
			Uint64("dropped", c.dropped.Load()).Uint64("suppressed", suppressed).
			Msg("slow consumer closed")
	}
}

// rateLimit lets one event through per second and counts the others, so
// that a wave of per-connection warnings stays a few log lines.
type rateLimit struct {
	mu         sync.Mutex
	last       int64
	suppressed uint64
}

// allow reports whether an event at now may be logged and how many were
// suppressed since the last one that was.
func (r *rateLimit) allow(now int64) (bool, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last != 0 && now-r.last < int64(time.Second) {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return true, n
}

// SlowConsumerCloses returns how many connections were closed as slow
// consumers.
func (p *Pool) SlowConsumerCloses() uint64 { return p.slowClosed.Load() }
