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
	var idle chan struct{}
	if c.writing {
		if c.idle == nil {
			c.idle = make(chan struct{})
		}
		idle = c.idle
	}
	c.mu.Unlock()
	if idle != nil {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-idle:
		case <-t.C:
		}
	}
}
