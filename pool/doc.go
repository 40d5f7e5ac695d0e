// Package pool is the delivery side of wsproxy: one Conn per WebSocket
// connection, each with a bounded queue of shared, pre-encoded frames and at
// most one writer at a time.
//
// The dispatcher calls Conn.Enqueue, which never blocks and never does I/O:
// it appends a pointer to a frame that was encoded once for all recipients. A
// writer goroutine exists only while a connection has something to write: it
// copies up to Config.BatchMaxMessages frames into a pooled buffer under the
// connection lock, then writes them with one syscall and a deadline outside
// it. Idle connections hold neither a write buffer nor a goroutine. The write
// deadline is re-armed once per half WriteTimeout, not per write
// (deadline.go), so that a busy connection costs no timer work per message.
//
// Server-to-client frames are encoded here (RFC 6455 section 5.2, unmasked),
// so that a batch of frames is one write. Control frames the WebSocket
// library would otherwise write itself (pong, close) are routed through the
// same writer so that frame order is kept.
package pool
