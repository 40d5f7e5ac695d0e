package pool

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"wsproxy/compat"
)

// Conn is one connection as the delivery side sees it.
//
// Concurrency: Enqueue, Send, Close and the accessors are safe from any
// goroutine. At most one writer goroutine runs per Conn (guarded by
// writing); it is started on demand and exits when the queue is empty.
type Conn struct {
	p           *Pool
	nc          net.Conn
	id, remote  string
	batch       bool
	connectedAt time.Time
	writeFn     func() // c.writeLoop, bound once so that starting a writer does not allocate
	// writeDeadline (unix ns) is the socket's current write deadline; only
	// the writer touches it (deadline.go).
	writeDeadline int64
	z             *deflateState // nil: no permessage-deflate (deflate.go)

	mu        sync.Mutex
	q         ring
	qBytes    int // data bytes queued
	qData     int // data frames queued
	lastSeq   uint64
	lastPing  int64
	writing   bool
	held      bool // frames queue but no writer starts until Start
	closing   bool // a close frame is queued or sent: nothing more is accepted
	forced    bool // a flush asked the writer to write everything queued
	dead      bool // the socket is finished
	idle      chan struct{}
	lastClose int

	lastActivity atomic.Int64
	sent         atomic.Uint64
	bytes        atomic.Uint64
	dropped      atomic.Uint64
	errs         atomic.Uint64
	shedBy       [numReasons]atomic.Uint64

	// satSince is when (unix ns) an enqueue first found the queue full since
	// the writer last found it below its bound; 0: not saturated. Written
	// under mu, read by the pool's Run loop without it.
	satSince atomic.Int64
	// abortAt is when (unix ns) the socket of a connection closed as a slow
	// consumer is closed hard; 0: not scheduled.
	abortAt atomic.Int64
}

// ID returns the connection id given at Add.
func (c *Conn) ID() string { return c.id }

// Remote returns the peer address given at Add.
func (c *Conn) Remote() string { return c.remote }

// ConnectedAt returns when the connection was added.
func (c *Conn) ConnectedAt() time.Time { return c.connectedAt }

// Touch records inbound activity (any frame from the client).
func (c *Conn) Touch() { c.lastActivity.Store(time.Now().UnixNano()) }

// CountError records a client error (bad message) against the connection.
func (c *Conn) CountError() { c.errs.Add(1) }

// Enqueue queues a shared data frame without blocking. seq deduplicates
// fan-out: a frame with the same non-zero seq as the previous one is ignored,
// so a connection whose filters overlap receives a message once. It returns
// false when the frame was not queued (duplicate, closing, or shed).
func (c *Conn) Enqueue(f *Frame, seq uint64) bool {
	c.mu.Lock()
	if seq != 0 {
		if c.lastSeq == seq {
			c.mu.Unlock()
			return false
		}
		c.lastSeq = seq
	}
	if c.closing || c.dead {
		c.mu.Unlock()
		return false
	}
	if c.z != nil && c.z.member != nil {
		f = c.streamFrameLocked(f, seq)
	}
	cfg := &c.p.cfg
	if len(f.Data) > cfg.QueueMaxBytes {
		c.mu.Unlock()
		c.shed(ReasonTooLarge, 1)
		return false
	}
	maxMsgs, maxBytes := c.p.queueBounds()
	if c.qData >= maxMsgs || c.qBytes+len(f.Data) > maxBytes {
		c.makeRoomLocked(f, maxMsgs, maxBytes)
	} else {
		c.pushLocked(f)
	}
	start := !c.writing && !c.held && (cfg.FlushInterval == 0 || c.qData >= cfg.BatchMaxMessages)
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
	return true
}

// Send queues a reply or control frame. These are never shed and are written
// as soon as the writer is free, whatever FlushInterval says.
func (c *Conn) Send(f *Frame) bool {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return false
	}
	c.pushLocked(f)
	start := !c.writing && !c.held
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
	return true
}

// Close queues a close frame behind everything already queued: the client
// receives its pending frames, then the close. Later frames are refused.
func (c *Conn) Close(code int, reason string) {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.lastClose = code
	c.pushLocked(CloseFrame(code, reason))
	c.held = false
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
}

// CloseNow discards pending frames and sends a close frame at once (used to
// answer a client's close, or for protocol errors).
func (c *Conn) CloseNow(code int, reason string) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.discardLocked(ReasonClosed)
	c.mu.Unlock()
	c.Close(code, reason)
}

// CloseCode returns the code of the close frame the server queued, or 0.
func (c *Conn) CloseCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastClose
}

// abort closes the socket without a close handshake; the reader then exits.
func (c *Conn) abort() {
	c.mu.Lock()
	c.dead = true
	c.discardLocked(ReasonClosed)
	c.mu.Unlock()
	_ = c.nc.Close()
}

func (c *Conn) pushLocked(f *Frame) {
	c.q.push(f, 8)
	if f.IsData() {
		c.qData++
		c.qBytes += len(f.Data)
		c.p.queuedFrames.Add(1)
		c.p.queuedBytes.Add(int64(len(f.Data)))
	}
}

func (c *Conn) poppedLocked(f *Frame) {
	if f.IsData() {
		c.qData--
		c.qBytes -= len(f.Data)
		c.p.queuedFrames.Add(-1)
		c.p.queuedBytes.Add(-int64(len(f.Data)))
	}
}

// dropOldestDataLocked removes the oldest data frame; false if there is none.
func (c *Conn) dropOldestDataLocked() bool {
	if c.q.len() > 0 && c.q.at(0).IsData() {
		c.poppedLocked(c.q.pop()) // the usual case, O(1)
		return true
	}
	for i := 1; i < c.q.len(); i++ {
		if c.q.at(i).IsData() {
			c.poppedLocked(c.q.removeAt(i))
			return true
		}
	}
	return false
}

func (c *Conn) discardLocked(r Reason) {
	n := 0
	for c.q.len() > 0 {
		f := c.q.pop()
		if f.IsData() {
			n++
		}
		c.poppedLocked(f)
	}
	c.q.clear()
	if n > 0 {
		c.shed(r, n)
	}
}

func (c *Conn) shed(r Reason, n int) {
	c.dropped.Add(uint64(n))
	c.shedBy[r].Add(uint64(n))
	c.p.shed[r].Add(uint64(n))
}

// Start lets the writer run for a connection added with ConnOptions.Hold.
func (c *Conn) Start() {
	c.mu.Lock()
	c.held = false
	start := c.startLocked()
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
}

// startLocked marks the writer as running if frames are pending and it may
// run; the caller then starts it.
func (c *Conn) startLocked() bool {
	start := c.q.len() > 0 && !c.writing && !c.dead && !c.held
	if start {
		c.writing = true
	}
	return start
}

// flush starts the writer if frames are pending; returns how many.
func (c *Conn) flush() int {
	c.mu.Lock()
	n := c.q.len()
	if n > 0 {
		c.forced = true
	}
	start := c.startLocked()
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
	return n
}

// writeLoop is the connection's only writer while it runs. It copies frames
// into a pooled buffer under the lock and writes outside it.
func (c *Conn) writeLoop() {
	p := c.p
	for {
		wb := p.getBuf()
		c.mu.Lock()
		if c.dead {
			c.stopWritingLocked()
			c.mu.Unlock()
			p.putBuf(wb)
			return
		}
		if c.holdLocked() {
			c.stopWritingLocked()
			c.mu.Unlock()
			p.putBuf(wb)
			return
		}
		closeSent := c.fillLocked(wb)
		if len(wb.b) == 0 {
			c.stopWritingLocked()
			c.mu.Unlock()
			p.putBuf(wb)
			return
		}
		c.mu.Unlock()

		c.armWriteDeadline(time.Now())
		_, err := c.nc.Write(wb.b)
		if err != nil {
			p.putBuf(wb)
			c.mu.Lock()
			aborted := c.dead // the pool closed the socket under the write
			c.stopWritingLocked()
			c.mu.Unlock()
			if !aborted {
				p.errorConns.Add(1)
				p.countWriteFailure(err)
				c.errs.Add(1)
			}
			c.abort()
			return
		}
		done := time.Now().UnixNano()
		nData := uint64(len(wb.ingest))
		c.sent.Add(nData)
		c.bytes.Add(uint64(len(wb.b)))
		p.msgsSent.Add(nData)
		p.bytesSent.Add(uint64(len(wb.b)))
		c.noteDeflate(&wb.z)
		var sum int64
		for _, t := range wb.ingest {
			d := done - t
			sum += d
			if p.observer != nil {
				p.observer.ObserveDelivery(time.Duration(d))
			}
		}
		if nData > 0 {
			p.latencySum.Add(sum)
			p.latencyCount.Add(nData)
		}
		p.putBuf(wb)
		if closeSent {
			// Nothing follows the close frame: half-close, so that the
			// client reads end of stream after it, and keep reading (the
			// reader discards what comes) until the client's close reply
			// or a bounded time. Closing the socket now would answer a
			// late client frame (a pong to a ping still in its backlog)
			// with a reset, and the reset destroys the close frame the
			// client has not read yet.
			HalfClose(c.nc)
			_ = c.nc.SetReadDeadline(p.closeWaitDeadline(time.Now()))
			c.mu.Lock()
			c.stopWritingLocked()
			c.mu.Unlock()
			return
		}
	}
}

// closeWaitDeadline is how long a connection whose close frame was written
// at now waits for the client's close reply: CloseGrace, or until the time
// WaitCloseUntil set if later.
func (p *Pool) closeWaitDeadline(now time.Time) time.Time {
	dl := now.Add(p.cfg.CloseGrace)
	if u := p.closeWaitUntil.Load(); u > dl.UnixNano() {
		return time.Unix(0, u)
	}
	return dl
}

// HalfClose shuts the write side of nc when its transport allows it (TCP,
// TLS), looking under fasthttp's hijacked-connection wrapper; reading goes
// on.
func HalfClose(nc net.Conn) {
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		nc = u.UnsafeConn()
	}
	if hc, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
}

// holdLocked reports whether what is queued should wait for the next flush:
// with FlushInterval > 0, data frames short of a full batch wait, unless a
// reply, control or close frame is queued or a flush was asked for. Without
// it a writer still busy with an earlier frame would take them along.
func (c *Conn) holdLocked() bool {
	cfg := &c.p.cfg
	return cfg.FlushInterval > 0 && !c.forced && !c.closing &&
		c.q.len() == c.qData && c.qData < cfg.BatchMaxMessages
}

func (c *Conn) stopWritingLocked() {
	c.writing = false
	c.forced = false
	if c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// fillLocked moves up to BatchMaxMessages frames into wb as WebSocket
// frames. It stops after a close frame and reports whether it wrote one.
func (c *Conn) fillLocked(wb *writeBuf) (closeSent bool) {
	c.noteDrainLocked()
	limit, maxBytes, size := c.p.cfg.BatchMaxMessages, c.p.cfg.BatchMaxBytes, 0
	for i := 0; i < limit && c.q.len() > 0; i++ {
		if n := len(c.q.at(0).Data); i > 0 && size+n > maxBytes {
			break
		}
		f := c.q.pop()
		size += len(f.Data)
		c.poppedLocked(f)
		if f.IsData() {
			wb.ingest = append(wb.ingest, f.IngestAt)
			if c.batch {
				wb.msgs = append(wb.msgs, f.Data)
				continue
			}
		}
		c.flushEnvelopeLocked(wb)
		c.appendFrameLocked(wb, f)
		if f.Op == OpClose {
			c.q.clear()
			return true
		}
	}
	c.flushEnvelopeLocked(wb)
	c.q.shrink()
	return false
}

// flushEnvelopeLocked writes the data frames collected for a batch-mode
// client as one batch envelope.
func (c *Conn) flushEnvelopeLocked(wb *writeBuf) {
	if len(wb.msgs) == 0 {
		return
	}
	wb.scratch = compat.AppendBatch(wb.scratch[:0], wb.msgs, time.Now().UnixMilli())
	c.appendEnvelopeLocked(wb)
	clear(wb.msgs)
	wb.msgs = wb.msgs[:0]
}

// release is called once the reader has stopped: it waits briefly for a
// write in flight, drops what is left and closes the socket.
func (c *Conn) release() {
	c.mu.Lock()
	c.closing = true
	idle := c.idleLocked()
	c.mu.Unlock()
	if idle != nil {
		t := time.NewTimer(time.Second)
		select {
		case <-idle:
		case <-t.C:
		}
		t.Stop()
	}
	c.mu.Lock()
	c.dead = true
	c.discardLocked(ReasonClosed)
	c.mu.Unlock()
	_ = c.nc.Close()
}

// ConnStats is a snapshot of one connection, for admin listings.
type ConnStats struct {
	ID           string `json:"id"`
	Remote       string `json:"remoteAddr"`
	ConnectedAt  int64  `json:"connectedAt"`
	LastActivity int64  `json:"lastActivity"`
	MessagesSent uint64 `json:"messagesSent"`
	BytesSent    uint64 `json:"bytesSent"`
	Dropped      uint64 `json:"dropped"`
	Errors       uint64 `json:"errors"`
	QueueDepth   int    `json:"queueDepth"`
	QueueBytes   int    `json:"queueBytes"`
	State        string `json:"state"`
	// Shed breaks Dropped down by reason (only reasons that occurred).
	Shed map[string]uint64 `json:"shed,omitempty"`
	// SaturatedSince is when (unix ms) the queue was found full without
	// having drained since; 0: keeping up.
	SaturatedSince int64 `json:"saturatedSince,omitempty"`
}

// Stats returns a snapshot of c.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	depth, qb := c.q.len(), c.qBytes
	state := "open"
	switch {
	case c.dead:
		state = "closed"
	case c.closing:
		state = "closing"
	}
	c.mu.Unlock()
	st := ConnStats{
		ID: c.id, Remote: c.remote,
		ConnectedAt:  c.connectedAt.UnixMilli(),
		LastActivity: c.lastActivity.Load() / 1e6,
		MessagesSent: c.sent.Load(),
		BytesSent:    c.bytes.Load(),
		Dropped:      c.dropped.Load(),
		Errors:       c.errs.Load(),
		QueueDepth:   depth,
		QueueBytes:   qb,
		State:        state,
		Shed:         c.shedCounts(),
	}
	if sat := c.satSince.Load(); sat != 0 {
		st.SaturatedSince = sat / 1e6
	}
	return st
}

// QueueCapacity returns how many frames c's queue holds without growing:
// 0 until it is first used, and again once a burst has drained.
func (c *Conn) QueueCapacity() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.q.capacity()
}

// Closing reports whether a close frame has been queued or the socket is gone.
func (c *Conn) Closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing || c.dead
}

// Offer queues a data frame only if it fits without shedding anything and
// leaves a quarter of the queue's bounds free for live frames; it reports
// whether it did. Snapshots on subscribe use it: what the queue cannot hold
// is not sent (and the caller counts it) rather than pushing out newer
// frames or frames of other keys.
func (c *Conn) Offer(f *Frame) bool {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return false
	}
	maxMsgs, maxBytes := c.p.queueBounds()
	maxMsgs, maxBytes = maxMsgs-maxMsgs/4, maxBytes-maxBytes/4
	if c.qData+1 > maxMsgs || c.qBytes+len(f.Data) > maxBytes {
		c.mu.Unlock()
		return false
	}
	c.pushLocked(f)
	cfg := &c.p.cfg
	start := !c.writing && !c.held && (cfg.FlushInterval == 0 || c.qData >= cfg.BatchMaxMessages)
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
	return true
}
