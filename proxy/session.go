package proxy

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"wsproxy/compat"
	"wsproxy/dispatch"
	"wsproxy/internal/admission"
	"wsproxy/internal/netpoll"
	"wsproxy/internal/wsframe"
	"wsproxy/observe"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// Close codes and reasons of PROTOCOL.md.
const (
	reasonShutdown   = "Server shutting down"
	reasonCapacity   = "Server at capacity"
	reasonInvalidUTF = "Invalid UTF-8"
)

func (s *Server) serveWS(ctx *fasthttp.RequestCtx) {
	// The handler is counted before the accepting check, under the intake
	// lock that Shutdown takes to stop intake: either Shutdown's Wait sees
	// this handler, or this handler sees that intake has stopped.
	s.intake.RLock()
	if !s.accepting.Load() {
		s.intake.RUnlock()
		ctx.Error("server shutting down", fasthttp.StatusServiceUnavailable)
		return
	}
	s.handlers.Add(1)
	s.intake.RUnlock()
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		s.handlers.Done()
		ctx.Error("expected a WebSocket upgrade", fasthttp.StatusUpgradeRequired)
		return
	}
	release, ok := s.guard.Admit(ctx)
	if !ok {
		s.handlers.Done()
		return
	}
	batch := string(ctx.QueryArgs().Peek("batch")) == "1"
	remote := ctx.RemoteAddr().String()
	// Beyond the connection limit, or while memory is critical: 1013.
	over := s.slots.Add(1) > int64(s.cfg.MaxConnections) || s.pool.Admit() != nil
	zresp, zc := s.negotiateDeflate(ctx)
	done := func() {
		s.handlers.Done()
		s.slots.Add(-1)
		release()
	}
	pu := s.upgrades.add(done)
	err := s.upgrader.Upgrade(ctx, func(ws *websocket.Conn) {
		if !s.upgrades.take(pu) {
			_ = ws.Close() // abandoned by Shutdown (upgrades.go)
			return
		}
		if over {
			defer done()
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseTryAgainLater, reasonCapacity), time.Now().Add(time.Second))
			_ = ws.Close()
			return
		}
		// Serve from a goroutine of our own on the raw socket, so that the
		// upgrade's buffers and request context are released now (internal/wsframe).
		// The connection is set up here, on the upgrade's short-lived
		// goroutine, so that the read goroutine's stack stays small
		// (shallow.go).
		nc, pre := wsframe.Detach(ws)
		ss := s.openConn(nc, pre, remote, batch, zc, done)
		go ss.readLoop()
	})
	if err == nil && zresp != "" && !over {
		// Set after Upgrade, which refuses a preset extension header; the
		// response is written when this handler returns.
		ctx.Response.Header.Set("Sec-WebSocket-Extensions", zresp)
	}
	if err != nil && s.upgrades.take(pu) {
		done()
	}
}

// maxChannelLen bounds a legacy channel name: the channel form accepts any
// string (as the legacy server did), so names are bounded and a longer one
// is a bad client frame.
const maxChannelLen = 64

// session is the protocol state of one connection. Only its read loop
// touches it.
type session struct {
	s          *Server
	c          *pool.Conn
	log        connLog
	channels   map[string]bool
	filters    int
	unfiltered bool
	buf        []byte
	sub        *dispatch.Subscriber // coverage and snapshot budget
	rate       admission.MessageRate
	budget     admission.ErrorBudget
	keys       []filterKeys // index keys per filter id
	nkeys      int
	zc         pool.Compression // permessage-deflate agreed (deflate_session.go)
	nc         net.Conn         // the raw socket the reader reads
	fr         *wsframe.Reader  // nil while parked: a parked connection keeps no reader
	park       *netpoll.Handle  // nil: the read goroutine blocks in reads (shallow.go)
	done       func()           // the upgrade's accounting, given back when the session ends
}

// openConn registers a connection, queues its welcome and starts its
// writer; readLoop then serves it and ends it.
func (s *Server) openConn(nc net.Conn, pre []byte, remote string, batch bool, zc pool.Compression, done func()) *session {
	id := s.nodeID + "-" + strconv.FormatUint(s.connSeq.Add(1), 10)
	ss := &session{s: s, log: connLog{l: &s.log, id: id}, rate: admission.NewMessageRate(s.cfg.Limits), zc: zc,
		budget: admission.NewErrorBudget(s.cfg.Limits), done: done}
	wc := nc // what the pool writes to and closes
	if *s.cfg.ParkIdleReaders {
		if ss.park = parkable(nc, ss.resume); ss.park != nil {
			wc = &stopConn{Conn: nc, h: ss.park}
		}
	}
	c := s.pool.Add(wc, pool.ConnOptions{ID: id, Remote: remote, Batch: batch, Hold: true, Compression: zc})
	ss.c, ss.sub = c, dispatch.NewSubscriber(c, s.cfg.SnapshotRate)

	ss.nc = nc
	ss.fr = ss.newReader()
	ss.fr.Pre = pre

	now := time.Now().UnixMilli()
	c.Send(pool.NewControl(compat.AppendWelcome(nil, id, now, now)))
	ss.updateDelivery()
	s.obs.Cache().Changed()
	c.Start() // welcome first, and the client is registered by the time it reads it
	if s.closingAll.Load() {
		// Registered after Shutdown collected the connections to close.
		c.Close(websocket.CloseGoingAway, reasonShutdown)
	}
	ss.log.Debug().Str("remote", remote).Bool("batch", batch).Msg("connected")
	return ss
}

// newReader returns a frame reader for the connection, from readers: a
// parked connection takes one at each wake-up and gives it back when it
// parks again (shallow.go), so that a wake-up for a heartbeat's pong
// allocates no reader. Control replies go through the connection's writer
// so that frame order holds.
func (ss *session) newReader() *wsframe.Reader {
	fr := readers.Get().(*wsframe.Reader)
	*fr = wsframe.Reader{Conn: ss.nc, Limit: ss.s.cfg.MaxPayload, Inflate: ss.zc != pool.CompressNone,
		Control: (*readerControl)(ss),
		Run:     shallow, // inflation off the read goroutine's stack (shallow.go)
		// A parked reader must get control back after a heartbeat's pong.
		ControlReturns: ss.park != nil,
	}
	return fr
}

// readers holds the frame readers of parked connections (newReader).
var readers = sync.Pool{New: func() any { return new(wsframe.Reader) }}

// releaseReader gives fr back to readers once the connection parked: it
// holds no message then (Release ran, nothing read ahead).
func releaseReader(fr *wsframe.Reader) {
	*fr = wsframe.Reader{}
	readers.Put(fr)
}

// readerControl is the session as its frame reader's Control.
type readerControl session

func (rc *readerControl) OnPing(data string) {
	ss := (*session)(rc)
	shallow(func() { ss.onPing(data) })
}

func (rc *readerControl) OnPong() { rc.c.Touch() }

func (rc *readerControl) OnClose(code int) {
	if code == websocket.CloseNoStatusReceived {
		rc.c.CloseNow(0, "")
	} else {
		rc.c.CloseNow(code, "")
	}
}

// readEnded ends the read loop on err: a forbidden frame is counted and
// answered with its close code before the socket lingers.
func (ss *session) readEnded(nc net.Conn, err error) {
	ss.logEnd(err)
	if pe, ok := wsframe.AsProtocolError(err); ok {
		r := observe.ClientProtocolError
		if pe.Code == websocket.CloseMessageTooBig {
			r = observe.ClientTooBig
		}
		ss.clientError(r)
		ss.c.CloseNow(pe.Code, pe.Reason)
		ss.linger(nc)
	}
}

// onMessage handles one client text or binary message.
func (ss *session) onMessage(mt int, msg []byte) {
	c := ss.c
	c.Touch()
	ss.s.obs.Touch()
	if mt == websocket.TextMessage && !utf8.Valid(msg) {
		ss.clientError(observe.ClientInvalidUTF8)
		c.CloseNow(websocket.CloseInvalidFramePayloadData, reasonInvalidUTF)
		return
	}
	if c.Closing() {
		return // a close is under way: only the client's close reply matters now
	}
	if !ss.allowMessage() {
		return
	}
	if mt != websocket.TextMessage && !utf8.Valid(msg) {
		// A binary frame is read as text, as the legacy server did;
		// bytes that are not UTF-8 cannot be JSON.
		ss.badFrame(&compat.Error{Code: compat.CodeInvalidMessage, Message: compat.MessageInvalidFormat})
		return
	}
	ss.handle(msg)
}

// onPing answers a client ping through the connection's writer, so that
// frame order holds.
func (ss *session) onPing(data string) {
	ss.c.Touch()
	if !ss.allowMessage() {
		return
	}
	ss.c.Send(&pool.Frame{Op: pool.OpPong, Data: []byte(data)})
}

func (ss *session) logEnd(err error) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		ss.log.Debug().Int("code", ce.Code).Msg("client closed")
		return
	}
	ss.log.Debug().Err(err).Msg("connection ended")
}

func (ss *session) end() {
	defer ss.done()
	defer ss.s.obs.Cache().Changed()
	if ss.park != nil {
		ss.park.Close()
	}
	ss.s.index.RemoveSubscriber(ss.c)
	for ch := range ss.channels {
		ss.s.obs.RemoveChannel(ch)
	}
	ss.s.pool.Remove(ss.c)
}

func (ss *session) reply(b []byte) { ss.c.Send(pool.NewControl(b)) }

// sendError replies with an error frame. It counts nothing: the caller
// counts the client error (clientError) or the internal one.
func (ss *session) sendError(code, msg string) {
	ss.reply(compat.AppendError(nil, code, msg, time.Now().UnixMilli()))
}

// badFrame is the one place a client frame the protocol cannot use is
// classified: every one is counted (per connection and in the server's
// error count, under e.Code), and only those the legacy server answered get
// an error frame; the others are silent, as the legacy servers were.
func (ss *session) badFrame(e *compat.Error) {
	if !ss.clientError(observe.ClientReason(e.Code)) {
		return // over the bad-frame budget: closed
	}
	if !e.Silent {
		ss.sendError(e.Code, e.Message)
	}
}

func (ss *session) handle(msg []byte) {
	m, perr := compat.DecodeClient(msg)
	if perr != nil {
		ss.badFrame(perr)
		return
	}
	now := time.Now().UnixMilli()
	switch m.Kind {
	case compat.KindPing:
		ss.reply(compat.AppendPong(nil, now))
	case compat.KindSubscribe:
		defer ss.s.obs.Cache().Changed()
		if m.Channel != "" {
			if len(m.Channel) > maxChannelLen || (!ss.channels[m.Channel] && len(ss.channels) >= ss.s.limits.MaxFilters) {
				ss.badFrame(&compat.Error{Code: compat.CodeLimitExceeded, Message: "channel too long or too many channels", Silent: true})
				return
			}
			if !ss.channels[m.Channel] {
				if ss.channels == nil {
					ss.channels = make(map[string]bool, 1)
				}
				ss.channels[m.Channel] = true
				ss.s.obs.AddChannel(m.Channel)
			}
			ss.updateDelivery()
			ss.reply(compat.AppendSubscribedChannel(nil, m.Channel, now))
			if m.Channel == compat.ChannelMarketData && ss.unfiltered {
				ss.s.disp.SendSnapshot(ss.sub, nil)
			}
			return
		}
		ss.subscribe(m.Filter, now)
	case compat.KindUnsubscribe:
		defer ss.s.obs.Cache().Changed()
		switch {
		case m.Channel != "":
			if ss.channels[m.Channel] {
				delete(ss.channels, m.Channel)
				ss.s.obs.RemoveChannel(m.Channel)
			}
			ss.updateDelivery()
			ss.reply(compat.AppendUnsubscribedChannel(nil, m.Channel, now))
		case m.FilterID != "":
			// An unknown id is echoed too, and nothing is removed (B).
			if ss.s.disp.RemoveFilter(ss.sub, m.FilterID) {
				ss.filters--
				ss.removeKeys(m.FilterID)
				ss.updateDelivery()
			}
			ss.reply(compat.AppendUnsubscribedFilter(nil, m.FilterID, now))
		default:
			ss.s.disp.RemoveAllFilters(ss.sub)
			ss.filters = 0
			ss.clearKeys()
			ss.updateDelivery()
			ss.reply(compat.AppendUnsubscribedFilter(nil, "", now))
		}
	case compat.KindGetStats:
		if !ss.allowCost(ss.s.cfg.Limits.StatsCost - 1) { // one was taken with the frame
			return
		}
		f, err := ss.s.obs.Cache().Reply(now)
		if err != nil {
			ss.s.obs.InternalError()
			ss.sendError(compat.CodeInternalError, "stats unavailable")
			return
		}
		ss.c.Send(f)
	}
}

func (ss *session) subscribe(spec compat.FilterSpec, now int64) {
	f, err := subscription.NewFilter(spec.Exchange, spec.Symbols, spec.DataTypes, ss.s.limits)
	var keys int
	if err == nil {
		keys, err = ss.admitKeys(f)
	}
	if err == nil {
		var id string
		id, err = ss.s.disp.AddFilter(ss.sub, f, ss.s.limits)
		if err == nil {
			ss.filters++
			ss.addKeys(id, keys)
			// Leave unfiltered delivery before the reply is queued: a client
			// that reads "subscribed" must get nothing outside its filters.
			ss.updateDelivery()
			ss.reply(compat.AppendSubscribedFilter(nil, id, spec, now))
			ss.s.disp.SendSnapshot(ss.sub, &f)
			return
		}
	}
	code := compat.CodeInvalidFilter
	if errors.Is(err, subscription.ErrLimitExceeded) {
		code = compat.CodeLimitExceeded
	}
	if !ss.clientError(observe.ClientReason(code)) {
		return
	}
	ss.sendError(code, err.Error())
}

// updateDelivery applies the unfiltered rule of PROTOCOL.md: a connection
// with no filter receives every data message while
// compat.unfiltered_receive_all is on (legacy channels leave delivery
// unchanged, as the deployed legacy server did); with it off, only while
// subscribed to the marketData channel.
func (ss *session) updateDelivery() {
	want := ss.filters == 0 &&
		(*ss.s.cfg.Compat.UnfilteredReceiveAll || ss.channels[compat.ChannelMarketData])
	if want != ss.unfiltered {
		ss.unfiltered = want
		ss.s.disp.SetUnfiltered(ss.sub, want)
	}
	ss.updateStream()
}

// connLog is a connection's logger: the server's, with conn_id added to each
// event. Unlike a zerolog child logger it holds no buffer of its own (a child
// logger costs 512 bytes per idle connection), and a disabled level costs
// nothing.
type connLog struct {
	l  *zerolog.Logger
	id string
}

func (c connLog) Debug() *zerolog.Event { return c.l.Debug().Str("conn_id", c.id) }
func (c connLog) Info() *zerolog.Event  { return c.l.Info().Str("conn_id", c.id) }
func (c connLog) Warn() *zerolog.Event  { return c.l.Warn().Str("conn_id", c.id) }
func (c connLog) Error() *zerolog.Event { return c.l.Error().Str("conn_id", c.id) }
