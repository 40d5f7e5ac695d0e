package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"net"

	"github.com/valyala/fasthttp"
)

// mutating guards the operator's levers (flush, drain, closing a
// connection). With admin.token set, the request must carry
// "Authorization: Bearer <token>" (401 otherwise); without one, only
// loopback callers are served (403 otherwise), so that an exposed port
// cannot be used to drain the node.
func (a *API) mutating(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return a.credentialed(h, "mutating admin calls are accepted from loopback only unless admin.token is set")
}

// perClient guards the reads that reveal individual clients (the
// connection listing and one connection: ids, addresses, counters) by the
// rule of the mutating calls. Aggregate figures (stats, health, metrics,
// status, /metrics, the probes) stay open, as the legacy API's were.
func (a *API) perClient(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return a.credentialed(h, "per-client admin reads are accepted from loopback only unless admin.token is set")
}

// credentialed serves h to callers holding the admin credential: the
// bearer token when admin.token is set, a loopback address when it is not.
// refusal is the 403 message for a non-loopback caller without a token.
func (a *API) credentialed(h fasthttp.RequestHandler, refusal string) fasthttp.RequestHandler {
	var want [sha256.Size]byte
	if a.cfg.Token != "" {
		want = sha256.Sum256([]byte(a.cfg.Token))
	}
	return func(ctx *fasthttp.RequestCtx) {
		if a.cfg.Token != "" {
			tok, ok := bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
			// Hashing first makes the comparison constant-time whatever the
			// lengths.
			got := sha256.Sum256(tok)
			if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				a.log.Warn().Str("remote", ctx.RemoteIP().String()).Str("path", string(ctx.Path())).Msg("admin call refused: bad or missing token")
				ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="wsproxy-admin"`)
				writeError(ctx, fasthttp.StatusUnauthorized, "missing or invalid bearer token")
				return
			}
		} else if !isLoopback(ctx.RemoteIP()) {
			a.log.Warn().Str("remote", ctx.RemoteIP().String()).Str("path", string(ctx.Path())).Msg("admin call refused: not loopback and no admin.token")
			writeError(ctx, fasthttp.StatusForbidden, refusal)
			return
		}
		h(ctx)
	}
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h []byte) ([]byte, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
		return nil, false
	}
	return bytes.TrimSpace(h[len(scheme):]), true
}

// isLoopback reports whether ip is a loopback address. An unknown address
// (a non-TCP listener) is not.
func isLoopback(ip net.IP) bool { return ip != nil && ip.IsLoopback() }
