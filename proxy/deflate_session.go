package proxy

import (
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"wsproxy/internal/wsdeflate"
	"wsproxy/pool"
)

// updateStream puts a connection that may share a compressor stream
// (shared_stream mode, context takeover agreed) into the stream of its
// delivery sequence: every unfiltered connection shares one, filtered ones
// share by identical filter sets. Called after every subscription change.
func (ss *session) updateStream() {
	if ss.zc != pool.CompressContext {
		return
	}
	ss.c.SetStream(ss.streamKey())
}

// streamKey identifies what the connection receives: "*" for every message,
// the canonical filter set otherwise, "" for nothing.
func (ss *session) streamKey() string {
	if ss.unfiltered {
		return "*"
	}
	if ss.filters == 0 {
		return ""
	}
	fs := ss.s.index.Filters(ss.c)
	parts := make([]string, 0, len(fs))
	for _, f := range fs {
		parts = append(parts, strings.Join(sortedCopy(f.Exchanges), ",")+"/"+
			strings.Join(sortedCopy(f.Symbols), ",")+"/"+strings.Join(sortedCopy(f.DataTypes), ","))
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	return "f:" + strings.Join(parts, "|")
}

func sortedCopy(v []string) []string {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}

// negotiateDeflate answers the upgrade's permessage-deflate offers when
// compression is enabled.
func (s *Server) negotiateDeflate(ctx *fasthttp.RequestCtx) (string, pool.Compression) {
	if !s.cfg.Compression.Enabled {
		return "", pool.CompressNone
	}
	return wsdeflate.Negotiate(ctx.Request.Header.PeekAll("Sec-WebSocket-Extensions"), pool.DeflateMode(s.cfg.Compression.Mode))
}
