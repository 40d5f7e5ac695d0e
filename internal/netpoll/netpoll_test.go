//go:build linux

package netpoll_test

import (
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"wsproxy/internal/netpoll"
	"wsproxy/internal/wstest"
)

const wait = 10 * time.Second

// pair returns both ends of a loopback TCP connection: the accepted one
// (parked in the tests) and the dialled one.
func pair(t *testing.T, ln net.Listener) (server, client net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// parked registers server and parks it; woke counts the wake-ups.
func parked(t *testing.T, server net.Conn, woke *atomic.Int32) *netpoll.Handle {
	t.Helper()
	h, err := netpoll.Register(server, func() { woke.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if h.Ready() {
		t.Fatal("a socket nobody wrote to is ready")
	}
	if !h.Park() {
		t.Fatal("an open socket could not be parked")
	}
	return h
}

// A parked socket wakes its reader once when the peer writes, and the
// byte is still there to read: parking reads nothing.
func TestParkedSocketWakesOnData(t *testing.T) {
	ln := listen(t)
	server, client := pair(t, ln)
	var woke atomic.Int32
	h := parked(t, server, &woke)
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, wait, "wake-up after data", func() bool { return woke.Load() == 1 })
	if !h.Ready() {
		t.Fatal("woken for data, but Ready is false")
	}
	b := make([]byte, 4)
	if n, err := server.Read(b); err != nil || string(b[:n]) != "x" {
		t.Fatalf("read %q, %v after the wake-up", b[:n], err)
	}
	// Armed again with nothing to read: no wake-up until the next byte.
	if !h.Park() {
		t.Fatal("could not park again")
	}
	if _, err := client.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, wait, "second wake-up", func() bool { return woke.Load() == 2 })
}

// Data that arrived before Park wakes at once: no wake-up is lost between
// the reader's last look and arming.
func TestParkAfterDataWakesAtOnce(t *testing.T) {
	ln := listen(t)
	server, client := pair(t, ln)
	var woke atomic.Int32
	h, err := netpoll.Register(server, func() { woke.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, wait, "data visible", h.Ready)
	if !h.Park() {
		t.Fatal("could not park")
	}
	wstest.Eventually(t, wait, "wake-up for data already there", func() bool { return woke.Load() == 1 })
}

// The peer's end of stream and Stop both wake a parked reader; after Stop
// the socket is not parked again.
func TestEndOfStreamAndStopWake(t *testing.T) {
	ln := listen(t)
	server, client := pair(t, ln)
	var woke atomic.Int32
	parked(t, server, &woke)
	client.Close()
	wstest.Eventually(t, wait, "wake-up at end of stream", func() bool { return woke.Load() == 1 })

	server2, _ := pair(t, ln)
	var woke2 atomic.Int32
	h2 := parked(t, server2, &woke2)
	server2.Close() // the server closes: epoll cannot see it, Stop does
	h2.Stop()
	wstest.Eventually(t, wait, "wake-up by Stop", func() bool { return woke2.Load() == 1 })
	if h2.Park() {
		t.Fatal("parked after Stop")
	}
	if !h2.Stopped() {
		t.Fatal("Stopped is false after Stop")
	}
	h2.Stop() // not parked: no second wake-up
	time.Sleep(50 * time.Millisecond)
	if n := woke2.Load(); n != 1 {
		t.Fatalf("%d wake-ups, want 1", n)
	}
}

// A descriptor number that a closed socket left behind and a new socket
// took wakes the new socket's reader, not the old one's.
func TestReusedDescriptorWakesItsOwnReader(t *testing.T) {
	ln := listen(t)
	old, oldClient := pair(t, ln)
	var wokeOld atomic.Int32
	hOld := parked(t, old, &wokeOld)
	old.Close()
	hOld.Stop()
	hOld.Close()
	oldClient.Close()
	wstest.Eventually(t, wait, "old reader woken once", func() bool { return wokeOld.Load() == 1 })
	server, client := pair(t, ln)
	var woke atomic.Int32
	parked(t, server, &woke)
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, wait, "new reader woken", func() bool { return woke.Load() == 1 })
	if n := wokeOld.Load(); n != 1 {
		t.Fatalf("old reader woken %d times, want 1", n)
	}
}

// Parked sockets hold no goroutine: a thousand of them leave the goroutine
// count where it was, and each wakes when written to.
func TestParkedSocketsHoldNoGoroutine(t *testing.T) {
	const n = 1000
	ln := listen(t)
	var woke atomic.Int32
	clients := make([]net.Conn, 0, n)
	for range 5 { // the poller's goroutine starts with the first socket
		s, _ := pair(t, ln)
		parked(t, s, &woke)
	}
	before := runtime.NumGoroutine()
	for range n {
		s, c := pair(t, ln)
		parked(t, s, &woke)
		clients = append(clients, c)
	}
	if g := runtime.NumGoroutine(); g > before+10 {
		t.Fatalf("%d goroutines with %d parked sockets, %d before", g, n, before)
	}
	for _, c := range clients {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	wstest.Eventually(t, wait, "every socket woken", func() bool { return woke.Load() == n })
}

// Only plain TCP sockets park; anything else (here an in-memory pipe)
// tells the caller to read from a goroutine.
func TestOnlyTCPParks(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := netpoll.Register(a, func() {}); !errors.Is(err, netpoll.ErrUnsupported) {
		t.Fatalf("Register(pipe) = %v, want ErrUnsupported", err)
	}
}
