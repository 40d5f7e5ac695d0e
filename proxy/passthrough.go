package proxy

import (
	"io"
	"strconv"
	"strings"

	"wsproxy/dataflow"
	"wsproxy/upstream"

	"github.com/valyala/fasthttp"
)

// Same origin: what wsproxy answers itself and what it passes on. A request
// is served by the first of
//
//  1. /ws, then the registered routes (admin, /metrics, /livez, /readyz,
//     ingest, the demo page at / when static.dir is off);
//  2. a path in wsproxy's own namespace (ownedPath) that no route serves:
//     404, never forwarded;
//  3. static.dir, for GET and HEAD: the file, else index.html for a
//     client-side route (spaRoute);
//  4. upstream.url: everything else, /health included;
//  5. 404.

// ownedPath reports whether path belongs to wsproxy whatever is
// configured, so that it never reaches the upstream: the WebSocket
// endpoint, the operator API, the ingest endpoint and the probes.
func ownedPath(path string) bool {
	switch path {
	case "/ws", "/api/websocket", dataflow.IngestPath, "/metrics", "/livez", "/readyz":
		return true
	}
	return strings.HasPrefix(path, "/api/websocket/")
}

func (s *Server) initPassThrough() error {
	next := upstream.NotFound
	if s.cfg.Upstream.URL != "" {
		up, err := upstream.New(s.cfg.Upstream, s.cfg.WriteTimeout, s.log)
		if err != nil {
			return err
		}
		s.up = up
		next = up.Serve
		// Request bodies reach the upstream as they arrive; bounded per
		// route by boundBody and by upstream.max_body_bytes.
		s.http.StreamRequestBody = true
	}
	if s.cfg.Static.Dir != "" {
		s.staticStop = make(chan struct{})
		h, err := upstream.NewStatic(s.cfg.Static.Dir, next, s.staticStop)
		if err != nil {
			return err
		}
		s.static = h
	}
	return nil
}

func (s *Server) passThrough(ctx *fasthttp.RequestCtx, path string) {
	switch {
	case ownedPath(path):
		upstream.NotFound(ctx)
	case s.static != nil && (ctx.IsGet() || ctx.IsHead()):
		s.static(ctx)
	case s.up != nil:
		s.up.Serve(ctx)
	default:
		upstream.NotFound(ctx)
	}
}

// boundBody keeps wsproxy's own routes as bounded as without request
// streaming (which is on when an upstream is configured): a body over the
// server's limit is refused with 413, a chunked one read up to it, before
// the handler runs.
func (s *Server) boundBody(ctx *fasthttp.RequestCtx) bool {
	if !s.http.StreamRequestBody {
		return true
	}
	max := s.http.MaxRequestBodySize
	cl := ctx.Request.Header.ContentLength()
	if cl > max {
		upstream.WriteJSONError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body of "+strconv.Itoa(cl)+" bytes exceeds "+strconv.Itoa(max))
		return false
	}
	if cl != -1 {
		return true // known length within the limit: read as before
	}
	stream := ctx.RequestBodyStream()
	if stream == nil {
		return true
	}
	b, err := io.ReadAll(io.LimitReader(stream, int64(max)+1))
	switch {
	case err != nil:
		upstream.WriteJSONError(ctx, fasthttp.StatusBadRequest, "reading request body: "+err.Error())
		return false
	case len(b) > max:
		upstream.WriteJSONError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body exceeds "+strconv.Itoa(max)+" bytes")
		return false
	}
	ctx.Request.SetBody(b)
	return true
}

// UpstreamStats counts the reverse proxy's requests and errors (zero and
// not Enabled without upstream.url).
func (s *Server) UpstreamStats() upstream.Stats {
	if s.up == nil {
		return upstream.Stats{}
	}
	return s.up.Stats()
}
