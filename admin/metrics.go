package admin

import "github.com/valyala/fasthttp"

func (a *API) metrics(ctx *fasthttp.RequestCtx) {
	writeJSON(ctx, fasthttp.StatusOK, a.p.Metrics())
}

// flush starts a write of every pending batch now and reports how many
// connections had frames pending and how many frames they held.
func (a *API) flush(ctx *fasthttp.RequestCtx) {
	r := a.p.Flush()
	a.log.Info().Str("remote", ctx.RemoteIP().String()).Int("connections", r.Connections).Int("messages", r.Messages).Msg("flush")
	writeJSON(ctx, fasthttp.StatusOK, r)
}
