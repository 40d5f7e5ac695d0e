package pool

import "time"

// armWriteDeadline makes sure the next write has a deadline at least
// WriteTimeout/2 ahead, re-arming it only when less is left. Setting a
// deadline re-arms a runtime timer; doing it on every write of every
// recipient cost a timer operation per message per connection, while this
// costs one per connection per WriteTimeout/2 of activity. Every write still
// has a deadline between WriteTimeout/2 and WriteTimeout away. Only the
// connection's writer calls it (one writer at a time: stateWriting).
func (c *Conn) armWriteDeadline(now time.Time) {
	timeout := c.p.cfg.WriteTimeout
	if c.writeDeadline-now.UnixNano() >= int64(timeout/2) {
		return
	}
	d := now.Add(timeout)
	c.writeDeadline = d.UnixNano()
	_ = c.nc.SetWriteDeadline(d)
}
