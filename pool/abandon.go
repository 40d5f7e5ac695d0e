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
	var idle chan struct{}
	if c.writing {
		if c.idle == nil {
			c.idle = make(chan struct{})
		}
		idle = c.idle
	}
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
