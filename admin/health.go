package admin

import (
	"wsproxy/observe"

	"github.com/valyala/fasthttp"
)

// health answers HealthStatus: 200 when healthy or degraded, 503 when
// unhealthy (PROTOCOL.md).
func (a *API) health(ctx *fasthttp.RequestCtx) {
	h := a.p.Stats().Health
	status := fasthttp.StatusOK
	if h.Status == observe.StatusUnhealthy {
		status = fasthttp.StatusServiceUnavailable
	}
	writeJSON(ctx, status, h)
}

// probe is the body of /livez and /readyz.
type probe struct {
	Status string   `json:"status"`
	Reason []string `json:"reasons,omitempty"`
}

// livez answers 200 for as long as the process serves HTTP.
func (a *API) livez(ctx *fasthttp.RequestCtx) {
	writeJSON(ctx, fasthttp.StatusOK, probe{Status: "alive"})
}

// readyz answers 503 when the node cannot serve new clients: draining or
// shutting down, memory critical, or (health.ready_requires_source) no
// source connected; 200 otherwise (proxy.Server.Readiness). Latency, error
// rates and anything clients send never make it 503.
func (a *API) readyz(ctx *fasthttp.RequestCtx) {
	if r := a.p.Readiness(); !r.Ready {
		writeJSON(ctx, fasthttp.StatusServiceUnavailable, probe{Status: "not ready", Reason: r.Reasons})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, probe{Status: "ready"})
}
