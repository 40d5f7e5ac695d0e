package upstream

import (
	_ "embed"

	"github.com/valyala/fasthttp"

	"wsproxy/config"
)

// demoPage is a plain HTML+JS page that connects to /ws exactly as the
// deployed frontend does and renders the live data, so that operators (and
// the browser e2e test) can see a node deliver with a real browser.
//
//go:embed web/index.html
var demoPage []byte

// RegisterDemoPage serves the demo page at / through handle unless
// demo_page is off or static.dir serves a frontend there.
func RegisterDemoPage(handle func(path string, h fasthttp.RequestHandler), cfg config.Config) {
	if cfg.DemoPage != nil && !*cfg.DemoPage || cfg.Static.Dir != "" {
		return
	}
	handle("/", serveDemoPage)
}

func serveDemoPage(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(demoPage)
}
