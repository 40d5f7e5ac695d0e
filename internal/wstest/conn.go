package wstest

import (
	"net"
	"time"

	"wsproxy/pool"
)

// DiscardConn is a net.Conn that discards writes and never returns from a
// read, so that delivery is measured without the kernel.
type DiscardConn struct{}

func (DiscardConn) Read([]byte) (int, error)         { select {} }
func (DiscardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (DiscardConn) Close() error                     { return nil }
func (DiscardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (DiscardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (DiscardConn) SetDeadline(time.Time) error      { return nil }
func (DiscardConn) SetReadDeadline(time.Time) error  { return nil }
func (DiscardConn) SetWriteDeadline(time.Time) error { return nil }

// Drain waits until p holds no queued frame (every writer has taken its
// frames).
func Drain(p *pool.Pool) {
	for p.QueuedFrames() != 0 {
		time.Sleep(20 * time.Microsecond)
	}
}
