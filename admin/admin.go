package admin

import (
	"encoding/json"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"wsproxy/config"
	"wsproxy/internal/histogram"
	"wsproxy/observe"
	"wsproxy/pool"
	"wsproxy/proxy"
	"wsproxy/subscription"
)

// StatsSource supplies the STATS snapshot and the listening address.
type StatsSource interface {
	Stats() observe.Stats
	Addr() net.Addr
}

// MetricsSource supplies windowed metrics and the latency histogram.
type MetricsSource interface {
	Metrics() observe.Metrics
	LatencyBuckets() histogram.Buckets
	MemoryLevel() string
	// ClientErrors counts client-caused events by reason; ErrorBudgetCloses
	// the clients closed for too many bad frames.
	ClientErrors() map[string]uint64
	ErrorBudgetCloses() uint64
}

// ConnectionSource holds the live connections and their subscriptions, for
// the connection listing (conninfo.go).
type ConnectionSource interface {
	Pool() *pool.Pool
	Index() *subscription.Index[*pool.Conn]
}

// Lifecycle drains and flushes, and reports whether upgrades are accepted.
type Lifecycle interface {
	Drain(window time.Duration) proxy.DrainStatus
	DrainState() proxy.DrainStatus
	Draining() bool
	Accepting() bool
	Readiness() observe.Readiness
	Flush() pool.FlushResult
}

// Provider is everything admin reads; proxy.Server satisfies it.
type Provider interface {
	StatsSource
	MetricsSource
	ConnectionSource
	Lifecycle
}

var _ Provider = (*proxy.Server)(nil)

// Router is where admin registers its endpoints (proxy.Server satisfies it).
type Router interface {
	Handle(path string, h fasthttp.RequestHandler)
	HandlePrefix(prefix string, h fasthttp.RequestHandler)
}

// API serves the admin endpoints. Safe for concurrent use.
type API struct {
	p   Provider
	cfg config.AdminConfig
	log zerolog.Logger
	reg *prometheus.Registry

	srv *fasthttp.Server // the separate listener of Start, if any

	cluster ClusterSource
}

// New returns the admin API over p. cfg is the admin section of the
// configuration with defaults applied; log receives operator actions.
func New(p Provider, cfg config.AdminConfig, log zerolog.Logger) *API {
	a := &API{p: p, cfg: cfg, log: log.With().Str("component", "admin").Logger()}
	a.reg = newRegistry(p)
	return a
}

const connectionsPrefix = "/api/websocket/connections/"

// routes are every endpoint by exact path.
func (a *API) routes() map[string]fasthttp.RequestHandler {
	r := map[string]fasthttp.RequestHandler{
		"/api/websocket/stats":       a.get(a.stats),
		"/api/websocket/health":      a.get(a.health),
		"/api/websocket/metrics":     a.get(a.metrics),
		"/api/websocket/status":      a.get(a.status),
		"/api/websocket/connections": a.get(a.perClient(a.connections)),
		"/api/websocket/flush":       a.post(a.mutating(a.flush)),
		"/api/websocket/drain":       a.drainRoute(),
		"/metrics":                   a.get(a.prometheus),
		"/livez":                     a.get(a.livez),
		"/readyz":                    a.get(a.readyz),
	}
	for path, h := range a.uiRoutes() {
		r[path] = h
	}
	return r
}

// Register installs every endpoint on r (the WebSocket listener).
func (a *API) Register(r Router) {
	for path, h := range a.routes() {
		r.Handle(path, h)
	}
	r.HandlePrefix(connectionsPrefix, a.connection)
}

// RegisterLegacy installs only the legacy GET /api/websocket/status, for the
// WebSocket listener when the rest is served on admin.listen.
func (a *API) RegisterLegacy(r Router) {
	r.Handle("/api/websocket/status", a.get(a.status))
}

// Handler returns a handler serving every endpoint, 404 otherwise.
func (a *API) Handler() fasthttp.RequestHandler {
	routes := a.routes()
	return func(ctx *fasthttp.RequestCtx) {
		path := string(ctx.Path())
		if h, ok := routes[path]; ok {
			h(ctx)
			return
		}
		if strings.HasPrefix(path, connectionsPrefix) {
			a.connection(ctx)
			return
		}
		writeError(ctx, fasthttp.StatusNotFound, "not found")
	}
}

func (a *API) get(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		h(ctx)
	}
}

func (a *API) post(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsPost() {
			methodNotAllowed(ctx, "POST")
			return
		}
		h(ctx)
	}
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(ctx *fasthttp.RequestCtx, status int, msg string) {
	writeJSON(ctx, status, errorBody{Error: msg})
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		ctx.Error(`{"error":"encoding failed"}`, fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}
