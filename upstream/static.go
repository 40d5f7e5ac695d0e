package upstream

import (
	"path/filepath"
	"strings"

	"github.com/valyala/fasthttp"
)

// NewStatic serves dir (static.dir) for GET and HEAD: the file a path
// names, else index.html for client-side routes (spaRoute), else next (the
// upstream or 404). Paths are normalised by fasthttp before they reach the
// file system, so nothing outside dir is served. Closing stop ends the file
// cache's cleaner goroutines (Shutdown does).
func NewStatic(dir string, next fasthttp.RequestHandler, stop chan struct{}) (fasthttp.RequestHandler, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	index := (&fasthttp.FS{
		Root:        root,
		PathRewrite: func(*fasthttp.RequestCtx) []byte { return []byte("/index.html") },
		SkipCache:   true,
		CleanStop:   stop,
	}).NewRequestHandler()
	miss := func(ctx *fasthttp.RequestCtx) {
		if spaRoute(string(ctx.Path())) {
			ctx.Response.Reset()
			index(ctx)
			ctx.Response.Header.Set("Cache-Control", "no-cache")
			return
		}
		next(ctx)
	}
	files := (&fasthttp.FS{
		Root:            root,
		IndexNames:      []string{"index.html"},
		AcceptByteRange: true,
		PathNotFound:    miss,
		CleanStop:       stop,
	}).NewRequestHandler()
	return files, nil
}

// spaRoute reports whether a path that names no file is one of the
// frontend's own routes, answered with index.html: not the collector's API
// (/api/..., /health) and no file extension in its last segment (a missing
// asset stays a 404).
func spaRoute(path string) bool {
	if path == "/api" || strings.HasPrefix(path, "/api/") || path == "/health" {
		return false
	}
	return !strings.Contains(path[strings.LastIndexByte(path, '/')+1:], ".")
}

// NotFound answers 404.
func NotFound(ctx *fasthttp.RequestCtx) { ctx.Error("not found", fasthttp.StatusNotFound) }
