package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/dispatch"
	"wsproxy/internal/admission"
	"wsproxy/internal/histogram"
	"wsproxy/observe"
	"wsproxy/pool"
	"wsproxy/subscription"
	"wsproxy/upstream"
)

// Server is one wsproxy node. Create it with New, start it with Serve or
// Start, stop it with Shutdown.
type Server struct {
	cfg     config.Config
	log     zerolog.Logger
	pool    *pool.Pool
	index   *subscription.Index[*pool.Conn]
	disp    *dispatch.Dispatcher
	sources []dataflow.Source
	limits  subscription.Limits
	guard   *admission.Guard

	http     *fasthttp.Server
	upgrader websocket.FastHTTPUpgrader
	routes   map[string]fasthttp.RequestHandler
	prefixes []prefixRoute
	fallback fasthttp.RequestHandler
	up       *upstream.Proxy         // nil: no upstream.url
	static   fasthttp.RequestHandler // nil: no static.dir

	started   time.Time
	nodeID    string
	connSeq   atomic.Uint64
	slots     atomic.Int64
	accepting atomic.Bool
	// closingAll is set by Shutdown before it collects the connections to
	// close: a connection registered after that closes itself (openConn).
	closingAll atomic.Bool
	handlers   sync.WaitGroup  // upgrade handlers and connections being served
	upgrades   pendingUpgrades // answered upgrades not yet handed over (upgrades.go)
	// intake orders handlers.Add against stopping intake (session.go).
	intake sync.RWMutex

	mu      sync.Mutex
	ln      net.Listener
	cancel  context.CancelFunc
	bg      sync.WaitGroup
	stopped bool

	obs *observe.Node // STATS, metrics, health, client errors; set by New
	op  operations    // the drain
	// staticStop ends static.dir's file cache cleaners at Shutdown.
	staticStop chan struct{}
}

// New builds a server from cfg (defaults applied) and the sources it will
// run. Nothing listens until Start or Serve.
func New(cfg config.Config, log zerolog.Logger, sources ...dataflow.Source) (*Server, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		index:   subscription.NewIndex[*pool.Conn](),
		sources: sources,
		limits:  cfg.SubscriptionLimits(),
		routes:  make(map[string]fasthttp.RequestHandler),
		started: time.Now(),
		nodeID:  strconv.FormatInt(time.Now().UnixNano()%1e9, 36),
	}
	for _, src := range sources {
		if l, ok := src.(dataflow.Logged); ok {
			l.SetLogger(log.With().Str("source", src.Name()).Logger())
		}
	}
	g, err := admission.New(cfg)
	if err != nil {
		return nil, err
	}
	s.guard = g
	latency := histogram.New(nil)
	pcfg := cfg.PoolConfig()
	pcfg.Log = log.With().Str("component", "pool").Logger()
	if s.pool, err = pool.New(pcfg, latency); err != nil {
		return nil, err
	}
	s.disp = dispatch.New(s.index, dispatch.OptionsOf(cfg))
	s.obs = observe.NewNode(observe.NodeParts{Config: cfg, Pool: s.pool, Index: s.index, Disp: s.disp, Sources: sources,
		Latency: latency, Rejections: g.Rejections, Server: s, Started: s.started})
	s.upgrader = websocket.FastHTTPUpgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  256,
		// Origin policy is configured by the hardening limits; browsers of
		// any origin are accepted by default, as the legacy server did.
		CheckOrigin: func(*fasthttp.RequestCtx) bool { return true },
	}
	s.http = &fasthttp.Server{
		Handler:            s.route,
		Name:               "wsproxy",
		ReadTimeout:        cfg.Limits.HandshakeTimeout,
		WriteTimeout:       30 * time.Second,
		IdleTimeout:        60 * time.Second,
		MaxRequestBodySize: 8 << 20,
		ReduceMemoryUsage:  true,
		CloseOnShutdown:    true,
		// Hijacked (WebSocket) connections are closed by pool.Remove, so
		// that heartbeats and admin kicks can close them at any time.
		KeepHijackedConns:             true,
		NoDefaultServerHeader:         false,
		DisableHeaderNamesNormalizing: false,
		Logger:                        fasthttpLogger{log},
	}
	if err := s.initPassThrough(); err != nil {
		return nil, err
	}
	s.accepting.Store(true)
	return s, nil
}

// Handle registers an HTTP handler for an exact path (admin, ingest, ...).
// Call before Start.
func (s *Server) Handle(path string, h fasthttp.RequestHandler) { s.routes[path] = h }

// HandlePrefix registers an HTTP handler for every path under prefix that
// has no exact route (for instance "/api/websocket/connections/"). Call
// before Start.
func (s *Server) HandlePrefix(prefix string, h fasthttp.RequestHandler) {
	s.prefixes = append(s.prefixes, prefixRoute{prefix, h})
}

type prefixRoute struct {
	prefix string
	h      fasthttp.RequestHandler
}

// HandleFallback registers the handler for paths with no exact route.
func (s *Server) HandleFallback(h fasthttp.RequestHandler) { s.fallback = h }

// RegisterDemoPage serves the demo page (upstream/demopage.go) at / unless
// demo_page is off or static.dir serves a frontend there. Call before Start.
func RegisterDemoPage(s *Server) { upstream.RegisterDemoPage(s.Handle, s.cfg) }

// Pool, Index and Dispatcher expose the parts for admin and tools.
func (s *Server) Pool() *pool.Pool { return s.pool }

// Index returns the subscription index.
func (s *Server) Index() *subscription.Index[*pool.Conn] { return s.index }

// Dispatcher returns the dispatcher (the Sink of every source).
func (s *Server) Dispatcher() *dispatch.Dispatcher { return s.disp }

// Config returns the effective configuration.
func (s *Server) Config() config.Config { return s.cfg }

// Logger returns the server's logger.
func (s *Server) Logger() zerolog.Logger { return s.log }

// Sources returns the configured sources.
func (s *Server) Sources() []dataflow.Source { return s.sources }

// Addr returns the listening address once started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Start listens on cfg.Listen and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("proxy: listen %s: %w", s.cfg.Listen, err)
	}
	s.Serve(ln)
	return nil
}

// Serve starts the background loops and serves ln until Shutdown.
func (s *Server) Serve(ln net.Listener) {
	if tc := s.guard.TLS(); tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	ln = closeGuardListener{ln}
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.ln, s.cancel, s.op.runCtx = ln, cancel, ctx
	s.mu.Unlock()
	s.obs.RecordSample(time.Now())

	dctx, dcancel := context.WithCancel(context.Background())
	s.bg.Add(3)
	go func() { defer s.bg.Done(); s.pool.Run(ctx) }()
	go func() { defer s.bg.Done(); s.obs.RunSampler(ctx) }()
	go func() { defer s.bg.Done(); <-ctx.Done(); dcancel() }()
	go s.disp.Run(dctx)
	for _, src := range s.sources {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if err := src.Run(ctx, s.disp); err != nil {
				s.log.Error().Err(err).Str("source", src.Name()).Msg("source stopped")
			}
		}()
	}
	go func() {
		if err := s.http.Serve(ln); err != nil {
			s.log.Error().Err(err).Msg("http server stopped")
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Int("sources", len(s.sources)).Msg("wsproxy listening")
}

// Shutdown stops accepting, stops the sources, delivers what is queued,
// closes every client with 1001 "Server shutting down" and waits for them, all
// within ctx. It returns ctx's error if time ran out.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	cancel := s.cancel
	s.mu.Unlock()
	s.intake.Lock()
	s.accepting.Store(false)
	s.intake.Unlock()

	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.ShutdownWithContext(ctx) }()
	if s.up != nil {
		s.up.CloseStreams() // fasthttp would wait for open event streams
	}
	grace := s.cfg.ShutdownTimeout
	if dl, ok := ctx.Deadline(); ok {
		grace = time.Until(dl)
	}
	if cancel != nil {
		// Intake stops (the sources end with the run context); the
		// dispatcher delivers what waits for it within its share of the
		// grace and counts the rest.
		s.disp.DrainUntil(time.Now().Add(time.Duration(float64(grace) * s.cfg.ShutdownDrainShare)))
		cancel()
		select {
		case <-s.disp.Done():
		case <-ctx.Done():
		}
	}
	if n := s.disp.Stats().Discarded; n > 0 {
		s.log.Warn().Uint64("messages", n).Msg("shutdown: messages still queued for dispatch were not delivered")
	}
	// fasthttp does not track hijacked connections: close them here, 1001
	// spread over half of the time left (nats lame duck mode), so that
	// thousands of close frames and flushes do not start in one instant.
	rest := grace
	if dl, ok := ctx.Deadline(); ok {
		rest = time.Until(dl)
	}
	// A client far behind its socket needs time to read its backlog up to
	// the close frame and answer: each connection waits for that reply
	// (half-closed, still reading) until three quarters of the time left
	// rather than close_grace, so that its late frames do not meet a closed
	// socket and reset the 1001 away; the last quarter is the process's to
	// end in.
	s.pool.WaitCloseUntil(time.Now().Add(rest * 3 / 4))
	// An upgrade accepted before intake stopped may register its
	// connection only now: either Each below sees it (both hold the pool's
	// lock), or its openConn sees closingAll and closes it.
	s.closingAll.Store(true)
	var conns []*pool.Conn
	s.pool.Each(func(c *pool.Conn) { conns = append(conns, c) })
	s.closeSpread(ctx, conns, min(rest/2, time.Duration(len(conns))*shutdownClosePace))
	s.pool.CloseAll(ctx, websocket.CloseGoingAway, reasonShutdown)
	err := <-httpDone
	// Upgrades fasthttp answered but never handed over are not waited for.
	s.upgrades.abandon(ctx, time.Now().Add(min(time.Second, rest/4)))
	waitGroup(ctx, &s.handlers)
	s.bg.Wait()
	if s.staticStop != nil {
		close(s.staticStop)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// shutdownClosePace is the pace of close frames at shutdown, one per
// connection: 5,000 a second (at most over half of the grace left).
const shutdownClosePace = 200 * time.Microsecond

func waitGroup(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (s *Server) route(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	if path == "/ws" {
		s.serveWS(ctx)
		return
	}
	if h, ok := s.routes[path]; ok {
		if s.boundBody(ctx) {
			h(ctx)
		}
		return
	}
	for _, r := range s.prefixes {
		if strings.HasPrefix(path, r.prefix) {
			if s.boundBody(ctx) {
				r.h(ctx)
			}
			return
		}
	}
	if s.fallback != nil {
		if s.boundBody(ctx) {
			s.fallback(ctx)
		}
		return
	}
	s.passThrough(ctx, path)
}

type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug().Msgf(format, args...)
}

// Rejections returns how many upgrade requests were refused before the
// upgrade, by reason (admission.Reject* constants). Connections refused
// after it for capacity (close 1013) are not included.
func (s *Server) Rejections() map[string]uint64 { return s.guard.Rejections() }
