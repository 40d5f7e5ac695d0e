package pool_test

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"wsproxy/internal/configtest"
	"wsproxy/pool"
)

// TestWriteFailuresByCause: a failed socket write is the client's doing
// when it reset the connection or stopped reading past the write deadline,
// and the server's otherwise; only the latter is a server write error.
func TestWriteFailuresByCause(t *testing.T) {
	tests := []struct {
		name                     string
		err                      error
		resets, timeouts, server uint64
	}{
		{"reset", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.ECONNRESET)}, 1, 0, 0},
		{"broken pipe", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, 1, 0, 0},
		{"deadline", &net.OpError{Op: "write", Err: os.ErrDeadlineExceeded}, 0, 1, 0},
		{"out of buffers", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.ENOBUFS)}, 0, 0, 1},
		{"anything else", errors.New("tls: internal error"), 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := configtest.NewPool(t, pool.Config{}, nil)
			c := p.Add(&failConn{err: tt.err}, pool.ConnOptions{ID: "a"})
			c.Enqueue(dataFrame(1), 1)
			waitFor(t, "write failure counted", func() bool { return p.Stats().ErrorConnections == 1 })
			st := p.Stats()
			if st.ClientResets != tt.resets || st.WriteTimeouts != tt.timeouts || st.ServerWriteErrors != tt.server {
				t.Fatalf("resets %d timeouts %d server %d", st.ClientResets, st.WriteTimeouts, st.ServerWriteErrors)
			}
		})
	}
}

// TestWriteToResetClientIsClientReset writes to a real TCP connection the
// peer has reset (SO_LINGER 0): the failure is a client reset.
func TestWriteToResetClientIsClientReset(t *testing.T) {
	cc, sc := tcpPair(t)
	_ = cc.(*net.TCPConn).SetLinger(0)
	_ = cc.Close() // RST
	p := configtest.NewPool(t, pool.Config{}, nil)
	c := p.Add(sc, pool.ConnOptions{ID: "a"})
	i := 0
	waitFor(t, "a write to fail", func() bool {
		if p.Stats().ErrorConnections != 0 {
			return true
		}
		i++
		c.Enqueue(dataFrame(i-1), uint64(i))
		return false
	})
	if st := p.Stats(); st.ClientResets != 1 || st.ServerWriteErrors != 0 {
		t.Fatalf("%+v", st)
	}
}
