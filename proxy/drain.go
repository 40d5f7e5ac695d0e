package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/pool"
)

// operations is the drain's state, apart from Server's core fields so that
// the data path stays readable.
type operations struct {
	draining atomic.Bool
	drainMu  sync.Mutex      // taken before Server.mu
	drain    *DrainStatus    // guarded by drainMu; nil until Drain
	runCtx   context.Context // guarded by Server.mu; set by Serve
}

// DrainStatus answers a drain request. Connections is how many clients the
// drain set out to close; Remaining how many are still connected.
type DrainStatus struct {
	Draining    bool  `json:"draining"`
	Connections int   `json:"connections"`
	WindowMs    int64 `json:"windowMs"`
	StartedAt   int64 `json:"startedAt,omitempty"`
	Remaining   int   `json:"remaining"`
}

const (
	// drainTick is the shortest pause between two batches of closes.
	drainTick = 10 * time.Millisecond
	// drainMaxBatch bounds the closes started at once (each starts a write).
	drainMaxBatch = 256
)

// Drain stops accepting WebSocket upgrades (they get 503) and closes every
// client with 1001 "Server shutting down", spread evenly over window, so that
// clients reconnect elsewhere without a thundering herd. It returns at once;
// health reports draining from then on. A second call changes nothing and
// reports the drain under way. The server keeps serving HTTP until Shutdown.
func (s *Server) Drain(window time.Duration) DrainStatus {
	window = max(window, 0)
	s.op.drainMu.Lock()
	defer s.op.drainMu.Unlock()
	if d := s.op.drain; d != nil {
		st := *d
		st.Remaining = s.pool.Len()
		return st
	}
	s.intake.Lock()
	s.accepting.Store(false)
	s.intake.Unlock()
	s.op.draining.Store(true)
	var conns []*pool.Conn
	s.pool.Each(func(c *pool.Conn) { conns = append(conns, c) })
	st := &DrainStatus{Draining: true, Connections: len(conns), WindowMs: window.Milliseconds(), StartedAt: time.Now().UnixMilli()}
	s.op.drain = st

	s.mu.Lock()
	ctx, run := s.op.runCtx, !s.stopped && s.op.runCtx != nil
	if run {
		s.bg.Add(1)
	}
	s.mu.Unlock()
	if run {
		go func() {
			defer s.bg.Done()
			s.closeGradually(ctx, conns, window)
		}()
	}
	s.log.Info().Int("connections", len(conns)).Dur("window", window).Msg("drain started")
	out := *st
	out.Remaining = len(conns)
	return out
}

// Draining reports whether a drain has started.
func (s *Server) Draining() bool { return s.op.draining.Load() }

// closeGradually closes conns in batches spread evenly over window, then
// any connection whose upgrade raced with the start of the drain.
func (s *Server) closeGradually(ctx context.Context, conns []*pool.Conn, window time.Duration) {
	if !s.closeSpread(ctx, conns, window) {
		return // Shutdown closes the rest
	}
	s.pool.Each(func(c *pool.Conn) { c.Close(websocket.CloseGoingAway, reasonShutdown) })
	s.log.Info().Int("connections", len(conns)).Msg("drain complete: every client was asked to close")
}

// closeSpread closes conns with 1001 in batches spread evenly over window;
// false if ctx ended first.
func (s *Server) closeSpread(ctx context.Context, conns []*pool.Conn, window time.Duration) bool {
	n := len(conns)
	interval, batch := drainTick, drainMaxBatch
	if n > 0 && window > 0 {
		interval = max(window/time.Duration(n), drainTick)
		steps := max(int(window/interval), 1)
		batch = min((n+steps-1)/steps, drainMaxBatch)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; i < n; {
		end := min(i+batch, n)
		for _, c := range conns[i:end] {
			c.Close(websocket.CloseGoingAway, reasonShutdown)
		}
		i = end
		if i == n {
			break
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}
