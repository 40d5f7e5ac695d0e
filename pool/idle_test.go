package pool_test

import (
	"testing"
	"time"

	"wsproxy/internal/configtest"
	"wsproxy/pool"
)

// TestWaitWrittenSharesIdleWithRelease: a WaitWritten in progress when the
// connection is removed returns as soon as the write in flight ends; release
// must not swap the channel it waits on for a new one.
func TestWaitWrittenSharesIdleWithRelease(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{}, nil)
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
