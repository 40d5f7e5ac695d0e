package legacy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"

	"wsproxy/compat"
)

// client is one connection. The reader goroutine (serveConn) handles client
// messages; the writer goroutine is the only one that writes data frames.
// close may be called from any goroutine.
type client struct {
	s       *Server
	ws      *websocket.Conn
	id      string
	log     zerolog.Logger
	out     chan []byte
	quit    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
	filters int // owned by the reader goroutine
}

// enqueue queues one frame without blocking; a full queue drops the frame
// and counts it.
func (c *client) enqueue(b []byte) {
	select {
	case c.out <- b:
	default:
		c.dropped.Add(1)
		c.s.cliDrop.Add(1)
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
		case b := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
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
	id := "legacy-" + strconv.FormatUint(s.seq.Add(1), 10)
	c := &client{
		s:    s,
		ws:   ws,
		id:   id,
		log:  s.log.With().Str("conn_id", id).Logger(),
		out:  make(chan []byte, s.cfg.ClientQueue),
		quit: make(chan struct{}),
	}
	now := time.Now().UnixMilli()
	c.enqueue(compat.AppendWelcome(nil, id, now, now))

	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	s.total.Add(1)

	wdone := make(chan struct{})
	go c.writeLoop(wdone)
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		c.once.Do(func() { close(c.quit) })
		<-wdone
		_ = ws.Close()
		if d := c.dropped.Load(); d > 0 {
			c.log.Warn().Uint64("dropped", d).Msg("client queue overflowed")
		}
	}()

	for {
		mt, msg, err := ws.ReadMessage()
		if err != nil {
			c.log.Debug().Err(err).Msg("connection ended")
			return
		}
		if mt != websocket.TextMessage {
			continue
		}
		c.handle(msg)
	}
}

// handle answers one client message as the legacy server did. Filters are
// acknowledged but not applied: every client receives every message.
func (c *client) handle(msg []byte) {
	m, perr := compat.DecodeClient(msg)
	now := time.Now().UnixMilli()
	if perr != nil {
		c.enqueue(compat.AppendError(nil, perr.Code, perr.Message, now))
		return
	}
	switch m.Kind {
	case compat.KindPing:
		c.enqueue(compat.AppendPong(nil, now))
	case compat.KindSubscribe:
		if m.Channel != "" {
			c.enqueue(compat.AppendSubscribedChannel(nil, m.Channel, now))
			return
		}
		c.filters++
		c.enqueue(compat.AppendSubscribedFilter(nil, "f"+strconv.Itoa(c.filters), m.Filter, now))
	case compat.KindUnsubscribe:
		if m.Channel != "" {
			c.enqueue(compat.AppendUnsubscribedChannel(nil, m.Channel, now))
			return
		}
		c.enqueue(compat.AppendUnsubscribedFilter(nil, m.FilterID, now))
	case compat.KindGetStats:
		b, err := compat.AppendStats(nil, c.s.Stats(), now)
		if err != nil {
			c.enqueue(compat.AppendError(nil, compat.CodeInternalError, "stats unavailable", now))
			return
		}
		c.enqueue(b)
	}
}
