package proxy

import (
	"crypto/tls"
	"net"
	"sync"

	"wsproxy/pool"
)

// closeGuardListener wraps every accepted connection in a closeGuardConn.
type closeGuardListener struct{ net.Listener }

func (l closeGuardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*tls.Conn); ok {
		return &tlsCloseGuardConn{closeGuardConn{Conn: c}, tc}, nil
	}
	g := &closeGuardConn{Conn: c}
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			g.raw = pool.NewRawWriter(rc)
		}
	}
	return g, nil
}

// tlsCloseGuardConn keeps the TLS methods visible, so that fasthttp still
// sees a TLS connection (RequestCtx.IsTLS, handshake under ReadTimeout).
type tlsCloseGuardConn struct {
	closeGuardConn
	tc *tls.Conn
}

func (c *tlsCloseGuardConn) Handshake() error { return c.tc.Handshake() }

func (c *tlsCloseGuardConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// closeGuardConn enforces, at the socket, RFC 6455's "nothing after the
// close frame", whoever writes. After the upgrade only the connection's
// pool writer writes (protocol errors found by the read loop,
// internal/wsframe, are answered through it: session.go); a connection refused at capacity
// gets its 1013 from the WebSocket library during the upgrade. Every write
// is one whole buffer of whole frames, and a write that starts with a close
// frame is the last one that matters: later writes are swallowed (reported
// as written so that the pool's writer ends quietly instead of tearing the
// connection down during the close handshake).
//
// Concurrency: Write is safe from several goroutines; writes are serialised
// (the kernel would serialise them anyway).
type closeGuardConn struct {
	net.Conn
	raw    *pool.RawWriter // plain TCP: for TryWrite, under mu; nil otherwise
	mu     sync.Mutex
	closed bool // a close frame went out
}

// wsCloseFirstByte is FIN + opcode 8, the first byte of a close frame (HTTP
// responses, written before the upgrade, start with 'H').
const wsCloseFirstByte = 0x88

func (c *closeGuardConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return len(b), nil
	}
	n, err := c.Conn.Write(b)
	if err == nil && len(b) >= 2 && b[0] == wsCloseFirstByte {
		c.closed = true
	}
	return n, err
}

// TryWrite writes what the socket takes of b without blocking
// (pool.TryWriter), under the same rule as Write. A TLS socket, or one that
// another write holds, takes nothing: pool.ErrWouldBlock.
func (c *closeGuardConn) TryWrite(b []byte) (int, error) {
	if c.raw == nil || !c.mu.TryLock() {
		return 0, pool.ErrWouldBlock
	}
	defer c.mu.Unlock()
	if c.closed {
		return len(b), nil
	}
	n, err := c.raw.TryWrite(b)
	if err == nil && n == len(b) && len(b) >= 2 && b[0] == wsCloseFirstByte {
		c.closed = true
	}
	return n, err
}

// CloseWrite half-closes the connection when the transport allows it.
func (c *closeGuardConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return nil
}
