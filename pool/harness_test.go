package pool_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wsproxy/internal/wstest"
	"wsproxy/pool"
)

// The pool tests' shared harness: in-memory sockets, frames, and waiting.

// recConn is a net.Conn that records what is written.
type recConn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	closed bool
}

func (r *recConn) Read([]byte) (int, error) { select {} }
func (r *recConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	return r.buf.Write(b)
}
func (r *recConn) Close() error                     { r.mu.Lock(); r.closed = true; r.mu.Unlock(); return nil }
func (r *recConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (r *recConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (r *recConn) SetDeadline(time.Time) error      { return nil }
func (r *recConn) SetReadDeadline(time.Time) error  { return nil }
func (r *recConn) SetWriteDeadline(time.Time) error { return nil }

type wsFrame struct {
	op      byte
	payload string
}

// frames parses the unmasked frames written so far.
func (r *recConn) frames(t testing.TB) []wsFrame {
	t.Helper()
	r.mu.Lock()
	b := append([]byte(nil), r.buf.Bytes()...)
	r.mu.Unlock()
	var out []wsFrame
	for len(b) > 0 {
		if b[0]&0x80 == 0 {
			t.Fatal("frame without FIN")
		}
		op := b[0] & 0x0F
		n := int(b[1] & 0x7F)
		if b[1]&0x80 != 0 {
			t.Fatal("server frame is masked")
		}
		b = b[2:]
		switch n {
		case 126:
			n = int(binary.BigEndian.Uint16(b))
			b = b[2:]
		case 127:
			n = int(binary.BigEndian.Uint64(b))
			b = b[8:]
		}
		out = append(out, wsFrame{op, string(b[:n])})
		b = b[n:]
	}
	return out
}

func (r *recConn) writeCount() int { r.mu.Lock(); defer r.mu.Unlock(); return r.writes }

// nullConn discards writes.
type nullConn struct{ recConn }

func (n *nullConn) Write(b []byte) (int, error) { return len(b), nil }

var _ net.Conn = (*nullConn)(nil)

// gateConn is a recConn whose writes block until gate is closed.
type gateConn struct {
	recConn
	gate    chan struct{}
	inWrite chan struct{}
	once    sync.Once
}

func (g *gateConn) Write(b []byte) (int, error) {
	g.once.Do(func() { close(g.inWrite) })
	<-g.gate
	return g.recConn.Write(b)
}

// failConn fails every write with err.
type failConn struct {
	recConn
	err error
}

func (f *failConn) Write([]byte) (int, error) { return 0, f.err }

// tcpPair returns both ends of a loopback TCP connection, closed when the
// test ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

func dataFrame(i int) *pool.Frame {
	return &pool.Frame{Op: pool.OpText, Data: []byte(`{"n":` + strconv.Itoa(i) + `}`), IngestAt: time.Now().UnixNano()}
}

func latest(key uint64, size int) *pool.Frame {
	return &pool.Frame{Op: pool.OpText, Data: bytes.Repeat([]byte("t"), size), IngestAt: 1, Key: key, LatestWins: true}
}

func latestData(key uint64, s string) *pool.Frame {
	return &pool.Frame{Op: pool.OpText, Data: []byte(s), IngestAt: 1, Key: key, LatestWins: true}
}

func trade(i int) *pool.Frame {
	return &pool.Frame{Op: pool.OpText, Data: []byte(`{"trade":` + strconv.Itoa(i) + `}`), IngestAt: 1, Key: 999}
}

// waitFor polls cond until it holds, failing the test after 5 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wstest.Eventually(t, 5*time.Second, what, cond)
}

// waitBlockedIn waits until a goroutine is parked in a select in fn.
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	waitFor(t, "a goroutine blocked in "+fn, func() bool {
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, fn) && strings.Contains(g, "[select") {
				return true
			}
		}
		return false
	})
}

// nullConns adds n connections that discard what they are sent.
func nullConns(p *pool.Pool, n int) []*pool.Conn {
	conns := make([]*pool.Conn, n)
	for i := range conns {
		conns[i] = p.Add(&nullConn{}, pool.ConnOptions{})
	}
	return conns
}

// fanOut enqueues f to every connection and waits until every writer has
// written it.
func fanOut(p *pool.Pool, conns []*pool.Conn, f *pool.Frame, seq uint64) {
	for _, c := range conns {
		c.Enqueue(f, seq)
	}
	for p.QueuedFrames() != 0 {
		time.Sleep(10 * time.Microsecond)
	}
}
