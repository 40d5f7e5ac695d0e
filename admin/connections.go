package admin

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	// kickReason is the close reason of DELETE /api/websocket/connections/{id}.
	kickReason  = "Closed by administrator"
	closeNormal = 1000
)

// connections answers GET /api/websocket/connections?offset=&limit=: live
// connections, oldest first, limit 100 by default and 1000 at most.
// Per-client: served behind perClient.
func (a *API) connections(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	offset, ok := intArg(ctx, args.Peek("offset"), "offset", 0, 1<<31-1, 0)
	if !ok {
		return
	}
	limit, ok := intArg(ctx, args.Peek("limit"), "limit", 1, maxPageLimit, defaultPageLimit)
	if !ok {
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, listConnections(a.p, offset, limit))
}

func intArg(ctx *fasthttp.RequestCtx, v []byte, name string, lo, hi, def int) (int, bool) {
	if len(v) == 0 {
		return def, true
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < lo || n > hi {
		writeError(ctx, fasthttp.StatusBadRequest, name+" must be an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi))
		return 0, false
	}
	return n, true
}

// connection serves /api/websocket/connections/{id}: GET describes it
// (per-client: admin credential), DELETE closes it with 1000 after its
// pending frames (mutating).
func (a *API) connection(ctx *fasthttp.RequestCtx) {
	id := string(ctx.Path()[len(connectionsPrefix):])
	if id == "" {
		writeError(ctx, fasthttp.StatusNotFound, "no connection id in path")
		return
	}
	switch {
	case ctx.IsGet() || ctx.IsHead():
		a.perClient(func(ctx *fasthttp.RequestCtx) {
			ci, ok := findConnection(a.p, id)
			if !ok {
				writeError(ctx, fasthttp.StatusNotFound, "no connection "+strconv.Quote(id))
				return
			}
			writeJSON(ctx, fasthttp.StatusOK, ci)
		})(ctx)
	case ctx.IsDelete():
		a.mutating(func(ctx *fasthttp.RequestCtx) {
			if !closeConnection(a.p, id, closeNormal, kickReason) {
				writeError(ctx, fasthttp.StatusNotFound, "no connection "+strconv.Quote(id))
				return
			}
			a.log.Info().Str("remote", ctx.RemoteIP().String()).Str("conn_id", id).Msg("connection closed by administrator")
			writeJSON(ctx, fasthttp.StatusOK, kickResult{ID: id, Closed: true, Code: closeNormal})
		})(ctx)
	default:
		methodNotAllowed(ctx, "GET, HEAD, DELETE")
	}
}

type kickResult struct {
	ID     string `json:"id"`
	Closed bool   `json:"closed"`
	Code   int    `json:"code"`
}
