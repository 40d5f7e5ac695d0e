package pool_test

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"wsproxy/pool"
)

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

// waitBlockedIn polls the goroutine dump until a goroutine is parked in fn.
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, fn) && strings.Contains(g, "[select") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine blocked in %s", fn)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWaitWrittenSharesIdleWithRelease: a WaitWritten in progress when the
// connection is removed returns as soon as the write in flight ends; release
// must not swap the channel it waits on for a new one.
func TestWaitWrittenSharesIdleWithRelease(t *testing.T) {
	p := pool.New(pool.Config{}, nil)
	gc := &gateConn{gate: make(chan struct{}), inWrite: make(chan struct{})}
	c := p.Add(gc, pool.ConnOptions{ID: "w"})
	c.Send(pool.NewControl([]byte(`{"type":"pong"}`)))
	<-gc.inWrite // the writer is in flight

	waited := make(chan struct{})
	go func() { c.WaitWritten(time.Minute); close(waited) }()
	waitBlockedIn(t, "pool.(*Conn).WaitWritten")
	removed := make(chan struct{})
	go func() { p.Remove(c); close(removed) }()
	waitBlockedIn(t, "pool.(*Conn).release")

	close(gc.gate)
	for name, ch := range map[string]chan struct{}{"WaitWritten": waited, "Remove": removed} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still waiting after the write ended", name)
		}
	}
}
