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
// so that a batch of frames is one write. Replies and control frames (ping,
// pong, close) go through the same writer: one goroutine at a time writes a
// socket, and frame order is kept. LOCKS.md has the writer's state and the
// lock order.
//
// Slow consumers and memory pressure (DESIGN.md). A queue never grows past
// its bounds: when it is full, a latest-wins frame (ticker, depth, kline)
// replaces in place the queued frame of the same exchange, type and symbol
// (ReasonConflated); any other frame pushes out the oldest data frame
// (ReasonQueueFull). Every shed frame is counted per reason, on the pool and
// on the connection. A connection whose queue was found full and has not
// drained below its bound since is saturated; saturated for longer than
// Config.SlowConsumerMaxLag, it is closed with 1008 "Slow consumer" and its
// socket is closed CloseGrace later even if its writer is stuck in a write.
// The memory monitor (MemoryConfig) samples the Go heap plus the queued
// bytes: elevated shrinks queue bounds to a quarter, critical also sheds the
// queues of saturated connections and refuses new connections (Admit).
// Enforcement runs on the pool's single Run goroutine: no per-connection
// timers.
package pool
