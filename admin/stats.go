package admin

import (
	"net"

	"github.com/valyala/fasthttp"
)

func (a *API) stats(ctx *fasthttp.RequestCtx) {
	if string(ctx.QueryArgs().Peek("scope")) == "cluster" {
		a.clusterStats(ctx)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, a.p.Stats())
}

// legacyStatus is the legacy server's /api/websocket/status answer.
type legacyStatus struct {
	Status   string `json:"status"`
	Port     int    `json:"port"`
	Clients  int64  `json:"clients"`
	Endpoint string `json:"endpoint"`
}

func (a *API) status(ctx *fasthttp.RequestCtx) {
	port := 0
	if ta, ok := a.p.Addr().(*net.TCPAddr); ok {
		port = ta.Port
	}
	writeJSON(ctx, fasthttp.StatusOK, legacyStatus{
		Status: "available", Port: port, Clients: a.p.Stats().Connection.ActiveConnections, Endpoint: "/ws",
	})
}
