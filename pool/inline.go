package pool

import (
	"errors"
	"syscall"
)

// Inline writes. A connection's writer is a goroutine started when frames
// are queued and none runs (kickLocked); at a broadcast that is one
// goroutine started, scheduled and ended per recipient per message, which
// costs about as much CPU as everything else in the delivery except the
// write itself. With Config.InlineWrites the goroutine that queues a data
// frame (the dispatcher's fan-out) makes that writer's first write itself,
// without blocking: it takes the writer's role as kickLocked would, fills
// the buffer, and offers it to the socket once (TryWrite). A socket that
// takes all of it leaves nothing to do; one that takes only part (its send
// buffer is full: a slow client) gets a writer goroutine for the rest, as
// without inline writes, so the fan-out never waits for a client. Frame
// order, batching, compression and the accounting are the writer's own
// (next, written), so nothing else changes.

// ErrWouldBlock is TryWrite's answer when the socket cannot take anything
// now, or cannot be written without blocking at all.
var ErrWouldBlock = errors.New("pool: write would block")

// TryWriter is a socket that can be offered a write without blocking: it
// writes what the kernel takes at once and returns how much that was (all
// of b, part of it, or 0 with ErrWouldBlock). The pool uses it when a
// connection's socket has it.
type TryWriter interface {
	TryWrite(b []byte) (int, error)
}

// RawWriter makes non-blocking writes to one socket. It goes through
// RawConn.Control, not RawConn.Write: a write that cannot block needs no
// deadline, and the socket's deadline, set by an earlier blocking write and
// long past on a connection idle for longer than WriteTimeout, would fail
// it. Its callback is bound once, so that a write allocates nothing. Not
// safe for concurrent use: the caller serialises writes (one writer per
// connection).
type RawWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr)
	b   []byte
	n   int
	err error
}

// NewRawWriter returns a RawWriter for the socket behind rc.
func NewRawWriter(rc syscall.RawConn) *RawWriter {
	w := &RawWriter{rc: rc}
	w.fn = w.write
	return w
}

func (w *RawWriter) write(fd uintptr) { w.n, w.err = syscall.Write(int(fd), w.b) }

// TryWrite makes one non-blocking write of b (TryWriter).
func (w *RawWriter) TryWrite(b []byte) (int, error) {
	w.b = b
	cerr := w.rc.Control(w.fn)
	n, err := w.n, w.err
	w.b, w.n, w.err = nil, 0, nil
	switch {
	case cerr != nil:
		return 0, cerr
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return 0, ErrWouldBlock
	case err != nil:
		return 0, err
	}
	return n, nil
}

// unlockKickInline releases c.mu like unlockKick; when that would start the
// writer and the socket can be written without blocking, the caller makes
// the writer's first write itself.
func (c *Conn) unlockKickInline() {
	start := c.kickLocked()
	if !start || c.tw == nil {
		c.mu.Unlock()
		if start {
			go c.writeFn()
		}
		return
	}
	// The writer's role is ours now (stateWriting).
	p := c.p
	wb := p.getBuf()
	closeSent := c.fillLocked(wb)
	c.mu.Unlock()
	n, err := c.tw.TryWrite(wb.b)
	switch {
	case err == nil && n == len(wb.b):
		p.inlineWrites.Add(1)
		if !c.written(wb, closeSent) {
			return
		}
		c.mu.Lock()
		if c.q.len() == 0 || c.st.phase() == stateDead || c.holdLocked() {
			c.stopWritingLocked()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		go c.writeFn() // more was queued meanwhile
	case err == nil || errors.Is(err, ErrWouldBlock):
		if n > 0 {
			p.inlineHanded.Add(1)
		}
		go c.finishWrite(wb, n, closeSent)
	default:
		c.writeFailed(wb, err)
	}
}

// finishWrite is the writer goroutine started for the rest of an inline
// write: it writes wb.b[off:] and then goes on as the writer.
func (c *Conn) finishWrite(wb *writeBuf, off int, closeSent bool) {
	if c.writeAll(wb, off, closeSent) {
		c.writeLoop()
	}
}

// InlineWrites returns how many writes the queueing goroutine made whole,
// and how many the socket took only part of (finished by a writer
// goroutine).
func (p *Pool) InlineWrites() (whole, partial uint64) {
	return p.inlineWrites.Load(), p.inlineHanded.Load()
}
