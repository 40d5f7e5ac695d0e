package admin

import (
	"github.com/valyala/fasthttp"

	"wsproxy/proxy"
)

// health answers HealthStatus: 200 when healthy or degraded, 503 when
// unhealthy (PROTOCOL.md).
func (a *API) health(ctx *fasthttp.RequestCtx) {
	h := a.p.Stats().Health
	status := fasthttp.StatusOK
	if h.Status == proxy.StatusUnhealthy {
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

// readyz answers 503 while draining or shutting down (new WebSocket upgrades
// are refused then) and while unhealthy, so that a load balancer sends new
// clients elsewhere; 200 otherwise.
func (a *API) readyz(ctx *fasthttp.RequestCtx) {
	var reasons []string
	if a.p.Draining() {
		reasons = append(reasons, "draining")
	} else if !a.p.Accepting() {
		reasons = append(reasons, "shutting down")
	}
	if h := a.p.Stats().Health; h.Status == proxy.StatusUnhealthy {
		reasons = append(reasons, h.Reasons...)
	}
	if len(reasons) > 0 {
		writeJSON(ctx, fasthttp.StatusServiceUnavailable, probe{Status: "not ready", Reason: reasons})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, probe{Status: "ready"})
}
