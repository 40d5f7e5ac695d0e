package pool_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"wsproxy/internal/configtest"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
)

const wait = 10 * time.Second

// tryConn is a TCP socket that can be written without blocking.
type tryConn struct {
	*net.TCPConn
	*pool.RawWriter
}

// tryPair returns the server end (as a TryWriter) and the client end of a
// loopback connection; rcvBuf > 0 shrinks the client's receive buffer.
func tryPair(t *testing.T, rcvBuf int) (tryConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			})
		}
	}
	cc, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	rc, err := sc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return tryConn{sc.(*net.TCPConn), pool.NewRawWriter(rc)}, cc.(*net.TCPConn)
}

// readTexts reads n unmasked text frames from r and returns their payloads.
func readTexts(t *testing.T, c net.Conn, r *bufio.Reader, n int) []string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	out := make([]string, 0, n)
	for len(out) < n {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		size := int(h[1] & 0x7f)
		switch size {
		case 126:
			var b [2]byte
			_, _ = io.ReadFull(r, b[:])
			size = int(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			_, _ = io.ReadFull(r, b[:])
			size = int(binary.BigEndian.Uint64(b[:]))
		}
		p := make([]byte, size)
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatal(err)
		}
		if pool.Op(h[0]&0x0f) == pool.OpText {
			out = append(out, string(p))
		}
	}
	return out
}

// TestInlineWrites: with InlineWrites, frames queued for a connection whose
// writer is idle are written by the queueing goroutine, whole and in order;
// with it off, none is.
func TestInlineWrites(t *testing.T) {
	for _, inline := range []bool{true, false} {
		t.Run(fmt.Sprint("inline=", inline), func(t *testing.T) {
			cfg := configtest.Pool(pool.Config{})
			cfg.InlineWrites = inline
			p, err := pool.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			sc, cc := tryPair(t, 0)
			// A deadline long past, as an earlier blocking write leaves on
			// a connection idle for longer than WriteTimeout: a write that
			// cannot block does not need one.
			_ = sc.SetWriteDeadline(time.Unix(1, 0))
			c := p.Add(sc, pool.ConnOptions{ID: "a"})
			defer p.Remove(c)
			r := bufio.NewReader(cc)
			const n = 50
			for i := range n {
				c.Enqueue(&pool.Frame{Op: pool.OpText, Data: fmt.Appendf(nil, "m%d", i), IngestAt: time.Now().UnixNano()}, 0)
				if got := readTexts(t, cc, r, 1); got[0] != fmt.Sprintf("m%d", i) {
					t.Fatalf("frame %d: %q", i, got[0])
				}
			}
			whole, _ := p.InlineWrites()
			if inline && whole < n/2 {
				t.Fatalf("%d of %d writes made inline, want most", whole, n)
			}
			if !inline && whole != 0 {
				t.Fatalf("%d inline writes with InlineWrites off", whole)
			}
			// Counted once the write returned, which may be after the client read it.
			wstest.Eventually(t, wait, "all counted sent", func() bool { return p.Stats().MessagesSent == n })
		})
	}
}

// TestInlineWriteToAFullSocketDoesNotBlock: a client that stops reading
// fills its socket; the queueing goroutine never waits for it (its inline
// write takes what fits and a writer goroutine finishes the rest), and once
// the client reads, every frame arrives whole and in order.
func TestInlineWriteToAFullSocketDoesNotBlock(t *testing.T) {
	cfg := configtest.Pool(pool.Config{QueueMaxMessages: 1000, QueueMaxBytes: 64 << 20})
	cfg.InlineWrites = true
	p, err := pool.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, cc := tryPair(t, 4096)
	_ = sc.SetWriteBuffer(8192)
	c := p.Add(sc, pool.ConnOptions{ID: "slow"})
	defer p.Remove(c)
	const n = 200
	payload := make([]byte, 16<<10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			copy(payload, fmt.Sprintf("%08d", i))
			c.Enqueue(&pool.Frame{Op: pool.OpText, Data: append([]byte(nil), payload...), IngestAt: 1}, 0)
		}
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Enqueue blocked on a client that does not read")
	}
	_, partial := p.InlineWrites()
	if partial == 0 {
		t.Fatal("no inline write was cut short by the full socket")
	}
	got := readTexts(t, cc, bufio.NewReader(cc), n)
	for i, m := range got {
		if m[:8] != fmt.Sprintf("%08d", i) || len(m) != len(payload) {
			t.Fatalf("frame %d starts %q, %d bytes", i, m[:8], len(m))
		}
	}
	wstest.Eventually(t, wait, "all counted sent", func() bool { return p.Stats().MessagesSent == n })
}

// TestInlineWriteAllocatesNothing: a broadcast's inline write to a socket
// that takes it allocates nothing (garbage per delivery would grow the heap
// of every node under steady traffic).
func TestInlineWriteAllocatesNothing(t *testing.T) {
	if wstest.RaceEnabled {
		t.Skip("the race detector allocates on its own; run without -race")
	}
	cfg := configtest.Pool(pool.Config{})
	cfg.InlineWrites = true
	p, err := pool.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, cc := tryPair(t, 0)
	go func() { _, _ = io.Copy(io.Discard, cc) }()
	c := p.Add(sc, pool.ConnOptions{ID: "a"})
	defer p.Remove(c)
	f := &pool.Frame{Op: pool.OpText, Data: []byte(`{"type":"trade"}`), IngestAt: 1}
	allocs := testing.AllocsPerRun(200, func() { c.Enqueue(f, 0) })
	whole, _ := p.InlineWrites()
	if whole < 100 {
		t.Fatalf("%d inline writes in 200 enqueues", whole)
	}
	if allocs > 0.05 {
		t.Fatalf("%.2f allocations per inline write, want 0", allocs)
	}
}
