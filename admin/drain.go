package admin

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/valyala/fasthttp"
)

// maxDrainWindow bounds the window a request may ask for.
const maxDrainWindow = 24 * time.Hour

// drainRoute serves /api/websocket/drain: GET reports the drain, POST starts
// it (mutating).
func (a *API) drainRoute() fasthttp.RequestHandler {
	start := a.mutating(a.drain)
	return func(ctx *fasthttp.RequestCtx) {
		switch {
		case ctx.IsGet() || ctx.IsHead():
			writeJSON(ctx, fasthttp.StatusOK, a.p.DrainState())
		case ctx.IsPost():
			start(ctx)
		default:
			methodNotAllowed(ctx, "GET, HEAD, POST")
		}
	}
}

// drainRequest is the optional JSON body of POST /api/websocket/drain:
// {"window":"30s"} or {"windowMs":30000}.
type drainRequest struct {
	Window   string `json:"window"`
	WindowMs *int64 `json:"windowMs"`
}

// drain starts a drain over the requested window (query ?window=30s or JSON
// body; default admin.drain_window) and answers at once.
func (a *API) drain(ctx *fasthttp.RequestCtx) {
	window, err := a.drainWindow(ctx)
	if err != "" {
		writeError(ctx, fasthttp.StatusBadRequest, err)
		return
	}
	st := a.p.Drain(window)
	a.log.Info().Str("remote", ctx.RemoteIP().String()).Dur("window", time.Duration(st.WindowMs)*time.Millisecond).Int("connections", st.Connections).Msg("drain requested")
	writeJSON(ctx, fasthttp.StatusOK, st)
}

func (a *API) drainWindow(ctx *fasthttp.RequestCtx) (time.Duration, string) {
	window := a.cfg.DrainWindow
	var req drainRequest
	if body := bytes.TrimSpace(ctx.PostBody()); len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return 0, "body: want {\"window\":\"30s\"} or {\"windowMs\":30000}: " + err.Error()
		}
	}
	if q := ctx.QueryArgs().Peek("window"); len(q) > 0 {
		req.Window = string(q)
	}
	switch {
	case req.Window != "":
		d, err := time.ParseDuration(req.Window)
		if err != nil {
			return 0, "window: " + err.Error()
		}
		window = d
	case req.WindowMs != nil:
		window = time.Duration(*req.WindowMs) * time.Millisecond
	}
	if window < 0 || window > maxDrainWindow {
		return 0, "window must be between 0 and 24h"
	}
	return window, ""
}
