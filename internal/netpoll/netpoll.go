// Package netpoll parks idle sockets without a goroutine each. A
// connection's reader that finds nothing to read arms its socket in one
// process-wide epoll set and returns; when the socket becomes readable (data,
// end of stream, an error) the handle's wake function runs on a new
// goroutine, which reads on as before. A parked connection costs no
// goroutine stack: only its kernel epoll entry and the Handle.
//
// The sockets stay in Go's own poller too (they are ordinary *net.TCPConn):
// reads and writes, deadlines and Close work as usual. What epoll cannot see
// is a deadline or a Close done by the server, so whoever does that calls
// Stop: the reader is woken, and reads with blocking reads from then on.
package netpoll

import (
	"errors"
	"sync/atomic"
)

// ErrUnsupported is returned where sockets cannot be parked (not Linux, or
// not a TCP socket); the caller then reads from a goroutine of its own.
var ErrUnsupported = errors.New("netpoll: parking not supported")

const (
	running int32 = iota // a goroutine owns the reader
	parked               // armed in epoll; no goroutine
)

// Handle is one registered socket. Park, Ready and Close are called by the
// goroutine that reads the socket; Stop by anyone.
type Handle struct {
	p       *poller
	fd      int32
	ctl     func(func(fd uintptr)) error // the socket's RawConn.Control
	wake    func()
	state   atomic.Int32
	stopped atomic.Bool
}

// Park arms the socket and reports true: the caller returns, and wake runs
// on a new goroutine once the socket is readable or Stop is called. It
// reports false when the socket cannot be parked now (Stop was called, or
// the socket is closed): the caller goes on reading.
func (h *Handle) Park() bool {
	if h.stopped.Load() {
		return false
	}
	h.state.Store(parked)
	if err := h.p.arm(h); err != nil || h.stopped.Load() {
		// Not armed, or Stop ran meanwhile and may have seen running:
		// whoever takes the handle back from parked resumes it.
		if h.state.CompareAndSwap(parked, running) {
			return false
		}
		return true // the poller or Stop already started wake
	}
	return true
}

// Stop makes the reader read with blocking reads from now on, and wakes it
// if it is parked. Call it after closing the socket or setting a read
// deadline.
func (h *Handle) Stop() {
	h.stopped.Store(true)
	h.resume()
}

// Stopped reports whether Stop was called.
func (h *Handle) Stopped() bool { return h.stopped.Load() }

func (h *Handle) resume() {
	if h.state.CompareAndSwap(parked, running) {
		go h.wake()
	}
}

// Close removes the socket from the epoll set. Call it from the reader once
// it is done with the socket (before or after closing it).
func (h *Handle) Close() { h.p.remove(h) }
