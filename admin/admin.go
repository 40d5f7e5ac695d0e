package admin

import (
	"encoding/json"
	"net"

	"github.com/valyala/fasthttp"

	"wsproxy/proxy"
)

// Provider is what admin reads: plain snapshots.
type Provider interface {
	Stats() proxy.Stats
	Addr() net.Addr
}

// Router is where admin registers its endpoints (proxy.Server satisfies it).
type Router interface {
	Handle(path string, h fasthttp.RequestHandler)
}

// API serves the admin endpoints.
type API struct {
	p       Provider
	cluster ClusterSource
}

// New returns the admin API over p.
func New(p Provider) *API { return &API{p: p} }

// Register installs every endpoint on r.
func (a *API) Register(r Router) {
	r.Handle("/api/websocket/stats", a.get(a.stats))
	r.Handle("/api/websocket/health", a.get(a.health))
	r.Handle("/api/websocket/status", a.get(a.status))
}

func (a *API) get(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsGet() && !ctx.IsHead() {
			ctx.Response.Header.Set("Allow", "GET, HEAD")
			writeJSON(ctx, fasthttp.StatusMethodNotAllowed, errorBody{Error: "method not allowed"})
			return
		}
		h(ctx)
	}
}

type errorBody struct {
	Error string `json:"error"`
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

func (a *API) stats(ctx *fasthttp.RequestCtx) {
	if string(ctx.QueryArgs().Peek("scope")) == "cluster" {
		a.clusterStats(ctx)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, a.p.Stats())
}

func (a *API) health(ctx *fasthttp.RequestCtx) {
	h := a.p.Stats().Health
	status := fasthttp.StatusOK
	if h.Status == "unhealthy" {
		status = fasthttp.StatusServiceUnavailable
	}
	writeJSON(ctx, status, h)
}

// legacyStatus is the legacy server's /api/websocket/status answer.
type legacyStatus struct {
	Status   string `json:"status"`
	Port     int    `json:"port"`
	Clients  int64  `json:"clients"`
	Endpoint string `json:"endpoint"`
}

func (a *API) status(ctx *fasthttp.RequestCtx) {
	port := 0
	if ta, ok := a.p.Addr().(*net.TCPAddr); ok {
		port = ta.Port
	}
	writeJSON(ctx, fasthttp.StatusOK, legacyStatus{
		Status: "available", Port: port, Clients: a.p.Stats().Connection.ActiveConnections, Endpoint: "/ws",
	})
}
