package proxy

import (
	"context"
	"sync"
	"time"
)

// pendingUpgrades are the upgrades answered with 101 whose connection
// fasthttp has yet to hand to the hijack handler. fasthttp drops that
// hand-over silently when the connection fails in between (the flush of
// the 101 response or setting its deadline, as when its shutdown closes the
// connection): the handler is never called, and what serveWS counted for
// the connection (Server.handlers, a slot, the admission) would never be
// given back — Shutdown would wait for it until its deadline.
type pendingUpgrades struct {
	mu sync.Mutex
	m  map[*pendingUpgrade]struct{}
}

// pendingUpgrade is one upgrade waiting for its hijack handler; release
// gives back what serveWS counted for it.
type pendingUpgrade struct{ release func() }

func (p *pendingUpgrades) add(release func()) *pendingUpgrade {
	u := &pendingUpgrade{release: release}
	p.mu.Lock()
	if p.m == nil {
		p.m = make(map[*pendingUpgrade]struct{})
	}
	p.m[u] = struct{}{}
	p.mu.Unlock()
	return u
}

// take reports whether u was still pending (and is no longer): the hijack
// handler serves the connection only then; serveWS's error path releases
// it only then.
func (p *pendingUpgrades) take(u *pendingUpgrade) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[u]; !ok {
		return false
	}
	delete(p.m, u)
	return true
}

func (p *pendingUpgrades) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

// abandon waits until the pending upgrades have been handed over or
// deadline, then releases those left: called once fasthttp has stopped
// (each hand-over still to come has then been started, and runs at once),
// so what remains at the deadline was dropped. A hand-over that comes
// later after all finds itself abandoned and closes the socket.
func (p *pendingUpgrades) abandon(ctx context.Context, deadline time.Time) {
	for p.len() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	p.mu.Lock()
	left := p.m
	p.m = nil
	p.mu.Unlock()
	for u := range left {
		u.release()
	}
}
