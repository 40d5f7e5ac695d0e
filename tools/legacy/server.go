package legacy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"wsproxy/compat"
	"wsproxy/dataflow"
)

// ErrStopped is returned by Serve and Start after Shutdown.
var ErrStopped = errors.New("legacy: server stopped")

// Config configures the reference server. Zero fields take the defaults
// documented on each field.
type Config struct {
	// Listen is the address of /ws and /api/websocket/status. "": ":8090".
	Listen string
	// ClientQueue is how many frames may wait for one client's writer;
	// beyond it frames for that client are dropped and counted. 0: 4096.
	ClientQueue int
	// InputQueue is how many messages may wait between the sources and the
	// broadcaster; beyond it messages are dropped and counted. 0: 65536.
	InputQueue int
	// WriteTimeout is the deadline of each socket write. 0: 10s.
	WriteTimeout time.Duration
	// MaxPayload is the largest client frame read; larger ones close the
	// connection with 1009. 0: 100 MiB (the ws library's default, A's).
	MaxPayload int64
	// HeartbeatInterval between protocol pings to every registered client,
	// counted from the start. 0: 30s (A's constant).
	HeartbeatInterval time.Duration
	// ConnectionTimeout: a client that sent no frame and no pong for this
	// long is dropped from the registry at the next heartbeat, without a
	// close frame (A's behaviour: it gets no more data or pings, and its
	// socket stays open). 0: 60s.
	ConnectionTimeout time.Duration
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = ":8090"
	}
	if c.ClientQueue == 0 {
		c.ClientQueue = 4096
	}
	if c.InputQueue == 0 {
		c.InputQueue = 65536
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 100 << 20
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 30 * time.Second
	}
	if c.ConnectionTimeout == 0 {
		c.ConnectionTimeout = 60 * time.Second
	}
}

// Validate reports values that cannot work. It expects defaults applied.
func (c *Config) Validate() error {
	var errs []error
	if c.ClientQueue < 1 {
		errs = append(errs, fmt.Errorf("client_queue %d: must be positive", c.ClientQueue))
	}
	if c.InputQueue < 1 {
		errs = append(errs, fmt.Errorf("input_queue %d: must be positive", c.InputQueue))
	}
	if c.WriteTimeout < 0 {
		errs = append(errs, fmt.Errorf("write_timeout %s: must not be negative", c.WriteTimeout))
	}
	if c.MaxPayload < 1 {
		errs = append(errs, fmt.Errorf("max_payload %d: must be positive", c.MaxPayload))
	}
	if c.HeartbeatInterval < 0 || c.ConnectionTimeout < 0 {
		errs = append(errs, fmt.Errorf("heartbeat_interval %s, connection_timeout %s: must not be negative", c.HeartbeatInterval, c.ConnectionTimeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("legacy: config: %w", errors.Join(errs...))
	}
	return nil
}

// Stats are the server's counters. Nothing is dropped without being counted
// here.
type Stats struct {
	// Clients is the number of connected clients.
	Clients int `json:"clients"`
	// TotalConnections counts every accepted upgrade.
	TotalConnections uint64 `json:"totalConnections"`
	// Broadcast counts messages taken from the sources and queued to every
	// registered client.
	Broadcast uint64 `json:"broadcast"`
	// Sent counts frames written to sockets (data and replies).
	Sent uint64 `json:"sent"`
	// InputDropped counts messages dropped because the input queue was full.
	InputDropped uint64 `json:"inputDropped"`
	// ClientDropped counts frames dropped because a client's queue was full.
	ClientDropped uint64 `json:"clientDropped"`
}

// Server is the legacy-behaviour reference. It is also the dataflow.Sink of
// its sources. Create it with New.
type Server struct {
	cfg      Config
	log      zerolog.Logger
	sources  []dataflow.Source
	in       chan *dataflow.MarketData
	http     *fasthttp.Server
	upgrader websocket.FastHTTPUpgrader
	routes   map[string]fasthttp.RequestHandler

	seq       atomic.Uint64
	total     atomic.Uint64
	broadcast atomic.Uint64
	sent      atomic.Uint64
	inDrop    atomic.Uint64
	cliDrop   atomic.Uint64

	started time.Time

	mu       sync.Mutex
	clients  map[*client]struct{}
	channels map[string]int // channel subscriptions per channel name
	chTotal  int64
	ln       net.Listener
	cancel   context.CancelFunc
	stopped  bool
	bg       sync.WaitGroup
	conns    sync.WaitGroup
}

var _ dataflow.Sink = (*Server)(nil)

// New returns a server fed by sources. Nothing runs until Serve or Start.
func New(cfg Config, log zerolog.Logger, sources ...dataflow.Source) (*Server, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		sources: sources,
		in:      make(chan *dataflow.MarketData, cfg.InputQueue),
		clients: make(map[*client]struct{}),
		routes:  make(map[string]fasthttp.RequestHandler),
		started: time.Now(),
	}
	s.upgrader = websocket.FastHTTPUpgrader{
		HandshakeTimeout: 10 * time.Second,
		CheckOrigin:      func(*fasthttp.RequestCtx) bool { return true },
	}
	s.http = &fasthttp.Server{
		Handler:      s.route,
		Name:         "wsproxy-legacy",
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		Logger:       fasthttpLogger{log},
	}
	return s, nil
}

// Handle registers an HTTP handler for an exact path, for sources that
// receive over HTTP (ingest). /ws and /api/websocket/status are taken. Call
// before Serve.
func (s *Server) Handle(path string, h fasthttp.RequestHandler) { s.routes[path] = h }

// Deliver implements dataflow.Sink: it queues md for broadcast and never
// blocks; a full queue drops and counts.
func (s *Server) Deliver(md *dataflow.MarketData) bool {
	select {
	case s.in <- md:
		return true
	default:
		s.inDrop.Add(1)
		return false
	}
}

// Start listens on Config.Listen and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("legacy: listen %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ln)
}

// Serve runs the sources and the broadcaster and serves ln in the
// background until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrStopped
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.ln, s.cancel = ln, cancel
	s.mu.Unlock()

	s.bg.Add(2)
	go func() { defer s.bg.Done(); s.broadcastLoop(ctx) }()
	go func() { defer s.bg.Done(); s.heartbeatLoop(ctx) }()
	for _, src := range s.sources {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if err := src.Run(ctx, s); err != nil {
				s.log.Error().Err(err).Str("source", src.Name()).Msg("source stopped")
			}
		}()
	}
	go func() {
		if err := s.http.Serve(ln); err != nil {
			s.log.Error().Err(err).Msg("http server stopped")
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Int("sources", len(s.sources)).Msg("legacy reference listening")
	return nil
}

// Addr returns the listening address, nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.clients)
	s.mu.Unlock()
	return Stats{
		Clients:          n,
		TotalConnections: s.total.Load(),
		Broadcast:        s.broadcast.Load(),
		Sent:             s.sent.Load(),
		InputDropped:     s.inDrop.Load(),
		ClientDropped:    s.cliDrop.Load(),
	}
}

// Shutdown stops the sources, broadcasts what they already delivered, then
// closes every client with 1001 "Server shutting down" after its queued
// frames, and stops the listener (new connections are refused), within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	cancel := s.cancel
	s.mu.Unlock()

	if cancel != nil {
		cancel()
	}
	bgDone := make(chan struct{})
	go func() { s.bg.Wait(); close(bgDone) }()
	select {
	case <-bgDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	clients := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.closeAfter(websocket.CloseGoingAway, "Server shutting down")
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- s.http.ShutdownWithContext(ctx) }()
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := <-httpErr; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("legacy: shutdown: %w", err)
	}
	return nil
}

// broadcastLoop sends every message to every registered client, encoded
// once with one send timestamp, as A's broadcast stamped it. When ctx ends
// it broadcasts what is already queued, then returns.
func (s *Server) broadcastLoop(ctx context.Context) {
	var targets []*client
	send := func(md *dataflow.MarketData) {
		targets = targets[:0]
		s.mu.Lock()
		for c := range s.clients {
			targets = append(targets, c)
		}
		s.mu.Unlock()
		b := compat.AppendData(nil, md, time.Now().UnixMilli())
		for _, c := range targets {
			c.enqueue(b)
		}
		s.broadcast.Add(1)
	}
	for {
		select {
		case md := <-s.in:
			send(md)
		case <-ctx.Done():
			for {
				select {
				case md := <-s.in:
					send(md)
				default:
					return
				}
			}
		}
	}
}

// heartbeatLoop pings every registered client each HeartbeatInterval and
// drops from the registry, silently as A did, a client that sent nothing
// (no frame, no pong) for ConnectionTimeout.
func (s *Server) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var live []*client
			s.mu.Lock()
			for c := range s.clients {
				if now.Sub(time.Unix(0, c.lastActive.Load())) > s.cfg.ConnectionTimeout {
					delete(s.clients, c)
					continue
				}
				live = append(live, c)
			}
			s.mu.Unlock()
			for _, c := range live {
				_ = c.ws.WriteControl(websocket.PingMessage, nil, now.Add(time.Second))
			}
		}
	}
}

func (s *Server) addChannel(name string) {
	s.mu.Lock()
	if s.channels == nil {
		s.channels = make(map[string]int)
	}
	s.channels[name]++
	s.chTotal++
	s.mu.Unlock()
}

func (s *Server) removeChannel(name string) {
	s.mu.Lock()
	if s.channels[name] <= 1 {
		delete(s.channels, name)
	} else {
		s.channels[name]--
	}
	s.chTotal--
	s.mu.Unlock()
}

// legacyStats is A's getStats payload: live connections, channel
// subscriptions, no adapters, the process.
func (s *Server) legacyStats(now time.Time) compat.LegacyStats {
	var ls compat.LegacyStats
	var age time.Duration
	s.mu.Lock()
	n := int64(len(s.clients))
	for c := range s.clients {
		age += now.Sub(c.since)
	}
	ls.Subscriptions.Total = s.chTotal
	for ch := range s.channels {
		ls.Subscriptions.Channels = append(ls.Subscriptions.Channels, ch)
	}
	s.mu.Unlock()
	slices.Sort(ls.Subscriptions.Channels)
	ls.Connections.Total, ls.Connections.Active = n, n
	if n > 0 {
		ls.Connections.AvgDuration = float64(age.Milliseconds()) / float64(n)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms) // getStats is rare on the reference server
	ls.Server = compat.LegacyServer{
		Uptime:    now.Sub(s.started).Seconds(),
		Memory:    compat.LegacyMemory{RSS: ms.Sys, HeapTotal: ms.HeapSys, HeapUsed: ms.HeapAlloc},
		Timestamp: now.UnixMilli(),
	}
	return ls
}

func (s *Server) route(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/ws":
		s.serveWS(ctx)

	case "/api/websocket/status":
		s.serveStatus(ctx)
	default:
		if h, ok := s.routes[string(ctx.Path())]; ok {
			h(ctx)
			return
		}
		if websocket.FastHTTPIsWebSocketUpgrade(ctx) {
			ctx.Error("Bad Request", fasthttp.StatusBadRequest) // A refused upgrades off /ws with 400
			return
		}
		ctx.Error("not found", fasthttp.StatusNotFound)
	}
}

// serveStatus answers the legacy status endpoint:
// {"status":"available","port":P,"clients":N,"endpoint":"/ws"}.
func (s *Server) serveStatus(ctx *fasthttp.RequestCtx) {
	port := 0
	if a, ok := ctx.LocalAddr().(*net.TCPAddr); ok {
		port = a.Port
	}
	ctx.SetContentType("application/json")
	b := []byte(`{"status":"available","port":`)
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, `,"clients":`...)
	b = strconv.AppendInt(b, int64(s.Stats().Clients), 10)
	b = append(b, `,"endpoint":"/ws"}`...)
	ctx.SetBody(b)
}

func (s *Server) serveWS(ctx *fasthttp.RequestCtx) {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		ctx.Error("server shutting down", fasthttp.StatusServiceUnavailable)
		return
	}
	s.conns.Add(1)
	err := s.upgrader.Upgrade(ctx, func(ws *websocket.Conn) {
		defer s.conns.Done()
		s.serveConn(ws)
	})
	if err != nil {
		s.conns.Done()
	}
}

type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug().Msgf(format, args...)
}
