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
// goroutine. At most one writer goroutine runs per Conn (stateWriting,
// LOCKS.md); kickLocked starts it on demand and it exits when the queue is
// empty or must wait for the next flush.
type Conn struct {
	p           *Pool
	nc          net.Conn
	id, remote  string
	batch       bool
	connectedAt time.Time
	writeFn     func()    // c.writeLoop, bound once so that starting a writer does not allocate
	tw          TryWriter // nc's non-blocking write; nil: no inline writes (inline.go)
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
	st        connState
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

// connState is a Conn's state, guarded by Conn.mu: a phase, which only moves
// forward (held → open → closing → dead; any phase may jump to a later one),
// and two writer flags.
//
//	phase         accepts frames  writer may start
//	stateHeld     yes             no (frames wait for Start)
//	stateOpen     yes             yes
//	stateClosing  no              yes (to write what is queued, the close frame last)
//	stateDead     no              no (the socket is finished)
//
// stateWriting: a writer goroutine runs; set only by kickLocked, cleared only
// by the writer itself (stopWritingLocked), so at most one runs.
// stateForced: a flush asked for everything queued to go out, whatever
// FlushInterval says; cleared when the writer stops.
type connState uint8

const (
	stateHeld connState = iota
	stateOpen
	stateClosing
	stateDead
	phaseMask connState = 3

	stateWriting connState = 1 << 2
	stateForced  connState = 1 << 3
)

func (s connState) phase() connState { return s & phaseMask }

// accepting reports whether frames may still be queued (held or open).
func (s connState) accepting() bool { return s.phase() < stateClosing }

// advance moves the phase forward to ph; a later phase is kept.
func (s *connState) advance(ph connState) {
	if s.phase() < ph {
		*s = *s&^phaseMask | ph
	}
}

// kickLocked is the one place a writer is started: it marks the writer as
// running and reports true, for the caller to start it once c.mu is
// released, if frames are queued, no writer runs, the phase lets one start
// and the queue is not waiting for the next flush (holdLocked).
func (c *Conn) kickLocked() bool {
	switch c.st &^ stateForced {
	case stateOpen, stateClosing: // no writer runs, and one may
	default:
		return false
	}
	if c.q.len() == 0 || c.holdLocked() {
		return false
	}
	c.st |= stateWriting
	return true
}

// unlockKick releases c.mu and starts the writer if kickLocked says so.
func (c *Conn) unlockKick() {
	start := c.kickLocked()
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
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
	if !c.st.accepting() {
		c.mu.Unlock()
		return false
	}
	if c.z != nil && c.z.member != nil {
		f = c.streamFrameLocked(f, seq)
	}
	if len(f.Data) > c.p.cfg.QueueMaxBytes {
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
	c.unlockKickInline()
	return true
}

// Send queues a reply or control frame. These are never shed and are written
// as soon as the writer is free, whatever FlushInterval says.
func (c *Conn) Send(f *Frame) bool {
	c.mu.Lock()
	if !c.st.accepting() {
		c.mu.Unlock()
		return false
	}
	c.pushLocked(f)
	c.unlockKick()
	return true
}

// Close queues a close frame behind everything already queued: the client
// receives its pending frames, then the close. Later frames are refused.
func (c *Conn) Close(code int, reason string) {
	c.mu.Lock()
	if !c.st.accepting() {
		c.mu.Unlock()
		return
	}
	c.closeLocked(code, reason)
	c.unlockKick()
}

// closeLocked queues the close frame and ends acceptance; the caller kicks
// the writer.
func (c *Conn) closeLocked(code int, reason string) {
	c.st.advance(stateClosing)
	c.lastClose = code
	c.pushLocked(CloseFrame(code, reason))
}

// CloseNow discards pending frames and sends a close frame at once (used to
// answer a client's close, or for protocol errors).
func (c *Conn) CloseNow(code int, reason string) {
	c.closeDiscarding(ReasonClosed, code, reason, 0)
}

// closeDiscarding drops the queue (counted under r), queues a close frame
// and, if abortAt is not 0, schedules the socket's hard close then. It
// reports false if the connection was already closing.
func (c *Conn) closeDiscarding(r Reason, code int, reason string, abortAt int64) bool {
	c.mu.Lock()
	if !c.st.accepting() {
		c.mu.Unlock()
		return false
	}
	c.discardLocked(r)
	c.closeLocked(code, reason)
	if abortAt != 0 {
		c.abortAt.Store(abortAt)
	}
	c.unlockKick()
	return true
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
	c.st.advance(stateDead)
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
	c.st.advance(stateOpen)
	c.unlockKick()
}

// flush starts the writer if frames are pending; returns how many.
func (c *Conn) flush() int {
	c.mu.Lock()
	n := c.q.len()
	if n > 0 {
		c.st |= stateForced
	}
	c.unlockKick()
	return n
}

// writeLoop is the connection's only writer while it runs. It copies frames
// into a pooled buffer under the lock and writes outside it.
func (c *Conn) writeLoop() {
	for {
		wb, closeSent, ok := c.next()
		if !ok || !c.writeAll(wb, 0, closeSent) {
			return
		}
	}
}

// next fills the writer's next buffer; false: nothing to write now, and the
// writer has stopped.
func (c *Conn) next() (wb *writeBuf, closeSent, ok bool) {
	p := c.p
	wb = p.getBuf()
	c.mu.Lock()
	if c.st.phase() == stateDead || c.holdLocked() {
		c.stopWritingLocked()
		c.mu.Unlock()
		p.putBuf(wb)
		return nil, false, false
	}
	closeSent = c.fillLocked(wb)
	if len(wb.b) == 0 {
		c.stopWritingLocked()
		c.mu.Unlock()
		p.putBuf(wb)
		return nil, false, false
	}
	c.mu.Unlock()
	return wb, closeSent, true
}

// writeAll writes wb.b[off:] under the write deadline and accounts for wb;
// it reports whether the writer goes on.
func (c *Conn) writeAll(wb *writeBuf, off int, closeSent bool) bool {
	c.armWriteDeadline(time.Now())
	if _, err := c.nc.Write(wb.b[off:]); err != nil {
		c.writeFailed(wb, err)
		return false
	}
	return c.written(wb, closeSent)
}

// writeFailed ends the writer after a failed write and closes the socket.
func (c *Conn) writeFailed(wb *writeBuf, err error) {
	p := c.p
	p.putBuf(wb)
	c.mu.Lock()
	aborted := c.st.phase() == stateDead // the pool closed the socket under the write
	c.stopWritingLocked()
	c.mu.Unlock()
	if !aborted {
		p.errorConns.Add(1)
		p.countWriteFailure(err)
		c.errs.Add(1)
	}
	c.abort()
}

// written accounts for wb once all of it reached the socket and reports
// whether the writer goes on (not after a close frame).
func (c *Conn) written(wb *writeBuf, closeSent bool) bool {
	p := c.p
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
		return false
	}
	return true
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
	return cfg.FlushInterval > 0 && c.st&stateForced == 0 && c.st.accepting() &&
		c.q.len() == c.qData && c.qData < cfg.BatchMaxMessages
}

func (c *Conn) stopWritingLocked() {
	c.st &^= stateWriting | stateForced
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
	c.st.advance(stateClosing)
	idle := c.idleLocked()
	c.mu.Unlock()
	waitIdle(idle, time.Second)
	c.mu.Lock()
	c.st.advance(stateDead)
	c.discardLocked(ReasonClosed)
	c.mu.Unlock()
	_ = c.nc.Close()
}

// WaitWritten waits up to d for a write in flight, and the frames queued
// before it, to reach the socket.
func (c *Conn) WaitWritten(d time.Duration) {
	c.mu.Lock()
	idle := c.idleLocked()
	c.mu.Unlock()
	waitIdle(idle, d)
}

// idleLocked returns the channel closed when the writer in flight stops, or
// nil if none runs. Every waiter shares the one channel: a second waiter
// must not replace it, or the first would wait out its timeout.
func (c *Conn) idleLocked() chan struct{} {
	if c.st&stateWriting == 0 {
		return nil
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	return c.idle
}

// waitIdle waits up to d for idle (from idleLocked) to be closed; nil: no
// writer was running.
func waitIdle(idle chan struct{}, d time.Duration) {
	if idle == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
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
	switch c.st.phase() {
	case stateDead:
		state = "closed"
	case stateClosing:
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
	return !c.st.accepting()
}

// Offer queues a data frame only if it fits without shedding anything and
// leaves a quarter of the queue's bounds free for live frames; it reports
// whether it did. Snapshots on subscribe use it: what the queue cannot hold
// is not sent (and the caller counts it) rather than pushing out newer
// frames or frames of other keys.
func (c *Conn) Offer(f *Frame) bool {
	c.mu.Lock()
	if !c.st.accepting() {
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
	c.unlockKick()
	return true
}
