package pool

import "time"

// shrinkFactor divides the queue bounds while memory is elevated or critical.
const shrinkFactor = 4

// queueBounds returns the per-connection queue bounds in force: the
// configured ones, or a quarter of them under memory pressure.
func (p *Pool) queueBounds() (msgs, bytes int) {
	if Pressure(p.mem.level.Load()) == PressureNormal {
		return p.cfg.QueueMaxMessages, p.cfg.QueueMaxBytes
	}
	return max(1, p.cfg.QueueMaxMessages/shrinkFactor), max(1, p.cfg.QueueMaxBytes/shrinkFactor)
}

// makeRoomLocked queues f into a queue that has no room for it. A
// latest-wins frame replaces, in place, the newest queued frame with the same
// key (conflation); otherwise the oldest data frames are dropped until f
// fits. Either way the connection is marked saturated.
func (c *Conn) makeRoomLocked(f *Frame, maxMsgs, maxBytes int) {
	if c.satSince.Load() == 0 {
		c.satSince.Store(time.Now().UnixNano())
	}
	if f.LatestWins && c.conflateLocked(f) {
		// The queue may be over a bound that shrank under memory pressure.
		for c.qData > maxMsgs || c.qBytes > maxBytes {
			if !c.dropOldestDataLocked() {
				break
			}
			c.shed(ReasonQueueFull, 1)
		}
		return
	}
	for c.qData >= maxMsgs || c.qBytes+len(f.Data) > maxBytes {
		if !c.dropOldestDataLocked() {
			break
		}
		c.shed(ReasonQueueFull, 1)
	}
	c.pushLocked(f)
}

// conflateLocked replaces the newest queued frame with f's key by f. The
// scan runs newest to oldest over at most the queue bound (100 frames by
// default) and only when the queue is full.
func (c *Conn) conflateLocked(f *Frame) bool {
	r := &c.q
	for i := r.n - 1; i >= 0; i-- {
		k := r.head + i
		if k >= len(r.buf) {
			k -= len(r.buf)
		}
		g := r.buf[k]
		if g.Key != f.Key || !g.LatestWins || !g.IsData() {
			continue
		}
		r.buf[k] = f
		d := len(f.Data) - len(g.Data)
		c.qBytes += d
		c.p.queuedBytes.Add(int64(d))
		c.shed(ReasonConflated, 1)
		return true
	}
	return false
}

// noteDrainLocked is called by the writer before it takes a batch: a queue
// found below its bound is no longer saturated.
func (c *Conn) noteDrainLocked() {
	if c.satSince.Load() == 0 {
		return
	}
	maxMsgs, maxBytes := c.p.queueBounds()
	if c.qData < maxMsgs && c.qBytes < maxBytes {
		c.satSince.Store(0)
	}
}

// dropDataLocked removes the queued data frames for which drop is true and
// returns how many frames and bytes went.
func (c *Conn) dropDataLocked(drop func(*Frame) bool) (n, bytes int) {
	r := &c.q
	kept := 0
	for i := 0; i < r.n; i++ {
		f := r.at(i)
		if f.IsData() && drop(f) {
			n++
			bytes += len(f.Data)
			c.poppedLocked(f)
			continue
		}
		r.buf[(r.head+kept)%len(r.buf)] = f
		kept++
	}
	for i := kept; i < r.n; i++ {
		r.buf[(r.head+i)%len(r.buf)] = nil
	}
	r.n = kept
	return n, bytes
}

func (c *Conn) shedCounts() map[string]uint64 {
	var m map[string]uint64
	for i := range c.shedBy {
		if n := c.shedBy[i].Load(); n > 0 {
			if m == nil {
				m = make(map[string]uint64, 2)
			}
			m[Reason(i).String()] = n
		}
	}
	return m
}

// ShedTotal returns how many of c's frames were shed for reason r.
func (c *Conn) ShedTotal(r Reason) uint64 { return c.shedBy[r].Load() }
