package proxy

import (
	"net"
	"time"

	"wsproxy/internal/netpoll"
	"wsproxy/pool"
)

// An idle connection's reader need not be a goroutine blocked in a read:
// with config park_idle_readers its socket waits in one epoll set
// (internal/netpoll) and the session's readLoop runs again, on a new
// goroutine, when the client sends something or the socket ends. Two things
// the epoll set cannot see are done by the server to the socket: closing
// it, and setting the read deadline that bounds the close handshake. The
// pool does both through a stopConn, which wakes the parked reader; from
// then on the reader blocks in reads as it would without parking, and sees
// the closed socket or the deadline.

// parkable registers nc for parking, or returns nil where it cannot be
// parked (TLS, whose buffered records epoll cannot see, and systems other
// than Linux): its reader then blocks in reads.
func parkable(nc net.Conn, resume func()) *netpoll.Handle {
	g, ok := nc.(*closeGuardConn)
	if !ok {
		return nil
	}
	h, err := netpoll.Register(g.Conn, resume)
	if err != nil {
		return nil
	}
	return h
}

// stopConn is the socket as the pool sees it when its reader may be parked.
type stopConn struct {
	net.Conn
	h *netpoll.Handle
}

func (c *stopConn) Close() error {
	err := c.Conn.Close()
	c.h.Stop()
	return err
}

func (c *stopConn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	c.h.Stop()
	return err
}

func (c *stopConn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	c.h.Stop()
	return err
}

// TryWrite offers b to the socket without blocking (pool.TryWriter).
func (c *stopConn) TryWrite(b []byte) (int, error) {
	if tw, ok := c.Conn.(pool.TryWriter); ok {
		return tw.TryWrite(b)
	}
	return 0, pool.ErrWouldBlock
}

// CloseWrite half-closes the socket (pool.HalfClose).
func (c *stopConn) CloseWrite() error {
	pool.HalfClose(c.Conn)
	return nil
}
