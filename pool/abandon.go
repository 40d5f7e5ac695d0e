package pool

import "time"

// Abandon is for a connection whose close frame was written by someone else
// (the WebSocket library answers protocol errors itself): nothing may follow
// that frame, so pending frames are dropped (counted as ReasonClosed), later
// ones refused, and Abandon waits up to a second for a write in flight to
// end. The socket stays open for the caller to finish the close handshake;
// Remove closes it.
func (c *Conn) Abandon() {
	c.mu.Lock()
	c.closing = true
	c.discardLocked(ReasonClosed)
	c.mu.Unlock()
	c.WaitWritten(time.Second)
}

// WaitWritten waits up to d for a write in flight, and the frames queued
// before it, to reach the socket.
func (c *Conn) WaitWritten(d time.Duration) {
	c.mu.Lock()
	idle := c.idleLocked()
	c.mu.Unlock()
	if idle != nil {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-idle:
		case <-t.C:
		}
	}
}

// idleLocked returns the channel closed when the writer in flight stops, or
// nil if none runs. Every waiter shares the one channel: a second waiter
// must not replace it, or the first would wait out its timeout.
func (c *Conn) idleLocked() chan struct{} {
	if !c.writing {
		return nil
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	return c.idle
}
