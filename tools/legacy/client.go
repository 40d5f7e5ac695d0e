package legacy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"

	"wsproxy/compat"
)

// outFrame is one item of a client's queue: a text frame, or the close
// frame that ends the queue (written after everything queued before it).
type outFrame struct {
	b      []byte
	close  bool
	code   int
	reason string
}

// client is one connection. The reader goroutine (serveConn) handles client
// messages; the writer goroutine is the only one that writes frames.
// close and closeAfter may be called from any goroutine.
type client struct {
	s       *Server
	ws      *websocket.Conn
	id      string
	log     zerolog.Logger
	out     chan outFrame
	quit    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
	since   time.Time

	// lastActive is when the client last sent a frame or a pong (unix ns);
	// the heartbeat drops a client silent for longer than the timeout.
	lastActive atomic.Int64

	chMu     sync.Mutex
	channels map[string]bool // guarded by chMu
}

// enqueue queues one frame without blocking; a full queue drops the frame
// and counts it.
func (c *client) enqueue(b []byte) {
	select {
	case c.out <- outFrame{b: b}:
	default:
		c.dropped.Add(1)
		c.s.cliDrop.Add(1)
	}
}

// closeAfter queues a close frame behind what is already queued, so that
// the client receives every queued frame first (A flushed, then closed).
// When the queue is full it closes at once.
func (c *client) closeAfter(code int, reason string) {
	select {
	case c.out <- outFrame{close: true, code: code, reason: reason}:
	default:
		c.close(code, reason)
	}
}

// close sends a close frame (best effort, bounded by a deadline) and stops
// the writer. The reader then fails and unregisters the client.
func (c *client) close(code int, reason string) {
	c.once.Do(func() {
		close(c.quit)
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
	})
}

func (c *client) writeLoop(done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case f := <-c.out:
			if f.close {
				c.close(f.code, f.reason)
				return
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, f.b); err != nil {
				c.log.Debug().Err(err).Msg("write failed")
				_ = c.ws.Close()
				return
			}
			c.s.sent.Add(1)
		case <-c.quit:
			return
		}
	}
}

func (s *Server) serveConn(ws *websocket.Conn) {
	now := time.Now()
	// A's connection ids: ws_<epoch-ms>_<n>, n counting from 1.
	id := "ws_" + strconv.FormatInt(now.UnixMilli(), 10) + "_" + strconv.FormatUint(s.seq.Add(1), 10)
	c := &client{
		s:     s,
		ws:    ws,
		id:    id,
		log:   s.log.With().Str("conn_id", id).Logger(),
		out:   make(chan outFrame, s.cfg.ClientQueue),
		quit:  make(chan struct{}),
		since: now,
	}
	c.lastActive.Store(now.UnixNano())
	ws.SetReadLimit(s.cfg.MaxPayload)
	ws.SetPongHandler(func(string) error { c.lastActive.Store(time.Now().UnixNano()); return nil })

	s.mu.Lock()
	if s.stopped {
		// Upgraded while shutting down: welcome, then close, as A did for
		// a client that connected just before its shutdown.
		s.mu.Unlock()
		c.enqueue(compat.AppendLegacyWelcome(nil, id, now.UnixMilli(), now.UnixMilli()))
		c.closeAfter(websocket.CloseGoingAway, "Server shutting down")
		wdone := make(chan struct{})
		c.writeLoop(wdone)
		_ = ws.SetReadDeadline(time.Now().Add(time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				break
			}
		}
		_ = ws.Close()
		return
	}
	// Registered and welcomed under the lock, so that no broadcast can
	// reach the client before its welcome.
	s.clients[c] = struct{}{}
	c.enqueue(compat.AppendLegacyWelcome(nil, id, now.UnixMilli(), now.UnixMilli()))
	s.mu.Unlock()
	s.total.Add(1)

	wdone := make(chan struct{})
	go c.writeLoop(wdone)
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		c.chMu.Lock()
		for ch := range c.channels {
			s.removeChannel(ch)
		}
		c.channels = nil
		c.chMu.Unlock()
		c.once.Do(func() { close(c.quit) })
		<-wdone
		_ = ws.Close()
		if d := c.dropped.Load(); d > 0 {
			c.log.Warn().Uint64("dropped", d).Msg("client queue overflowed")
		}
	}()

	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			c.log.Debug().Err(err).Msg("connection ended")
			return
		}
		c.lastActive.Store(time.Now().UnixNano())
		// Binary frames are read as text, as A's ws library handed them on.
		c.handle(msg)
	}
}

// handle answers one client message as the deployed legacy server (A) did:
// ping, the channel form of subscribe and unsubscribe, and getStats are
// answered; a frame that is not JSON (or is null) gets "Invalid message
// format"; everything else, the filter form included, gets nothing.
func (c *client) handle(msg []byte) {
	now := time.Now()
	ts := now.UnixMilli()
	if !utf8.Valid(msg) {
		c.enqueue(compat.AppendLegacyError(nil, compat.MessageInvalidFormat, ts))
		return
	}
	m, perr := compat.DecodeClient(msg)
	if perr != nil {
		if perr.Code == compat.CodeInvalidMessage && !perr.Silent {
			c.enqueue(compat.AppendLegacyError(nil, compat.MessageInvalidFormat, ts))
		}
		return
	}
	switch m.Kind {
	case compat.KindPing:
		c.enqueue(compat.AppendPong(nil, ts))
	case compat.KindSubscribe:
		if m.Channel != "" {
			c.chMu.Lock()
			if !c.channels[m.Channel] {
				if c.channels == nil {
					c.channels = make(map[string]bool)
				}
				c.channels[m.Channel] = true
				c.s.addChannel(m.Channel)
			}
			c.chMu.Unlock()
			c.enqueue(compat.AppendSubscribedChannel(nil, m.Channel, ts))
		}
	case compat.KindUnsubscribe:
		if m.Channel != "" {
			c.chMu.Lock()
			if c.channels[m.Channel] {
				delete(c.channels, m.Channel)
				c.s.removeChannel(m.Channel)
			}
			c.chMu.Unlock()
			c.enqueue(compat.AppendUnsubscribedChannel(nil, m.Channel, ts))
		}
	case compat.KindGetStats:
		b, err := compat.AppendStatsReply(nil, c.s.legacyStats(now), struct{}{}, ts)
		if err != nil {
			c.log.Error().Err(err).Msg("stats")
			return
		}
		c.enqueue(b)
	}
}
