package admin

import (
	"embed"
	"mime"
	"path"

	"github.com/valyala/fasthttp"
)

// uiFiles is the operator dashboard served at /admin/ (ui/): plain HTML, CSS
// and JavaScript with its own small chart code, no build step and nothing
// fetched from elsewhere, so it works offline.
//
//go:embed ui/index.html ui/app.js ui/chart.js ui/style.css
var uiFiles embed.FS

const uiPrefix = "/admin/"

// uiContentSecurity keeps the page to its own origin: scripts, styles and
// API calls all come from the admin listener.
const uiContentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"

// uiRoutes are the page's paths, or none when admin.ui is off.
func (a *API) uiRoutes() map[string]fasthttp.RequestHandler {
	if !a.cfg.UIEnabled() {
		return nil
	}
	r := map[string]fasthttp.RequestHandler{
		"/admin": a.get(func(ctx *fasthttp.RequestCtx) { ctx.Redirect(uiPrefix, fasthttp.StatusMovedPermanently) }),
	}
	entries, _ := uiFiles.ReadDir("ui")
	for _, e := range entries {
		name := e.Name()
		body, _ := uiFiles.ReadFile("ui/" + name)
		ctype := mime.TypeByExtension(path.Ext(name))
		h := a.get(func(ctx *fasthttp.RequestCtx) { serveUIFile(ctx, ctype, body) })
		r[uiPrefix+name] = h
		if name == "index.html" {
			r[uiPrefix] = h
		}
	}
	return r
}

func serveUIFile(ctx *fasthttp.RequestCtx, ctype string, body []byte) {
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", uiContentSecurity)
	h.Set("Referrer-Policy", "no-referrer")
	ctx.SetContentType(ctype)
	ctx.SetBody(body)
}
