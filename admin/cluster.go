package admin

import (
	"context"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"wsproxy/proxy"
)

// ClusterSource answers cluster-wide statistics (proxy.Cluster satisfies
// it).
type ClusterSource interface {
	Stats(ctx context.Context) (proxy.ClusterStats, error)
}

// SetCluster enables GET /api/websocket/stats?scope=cluster. Without it
// that query answers 404. Call before serving.
func (a *API) SetCluster(c ClusterSource) { a.cluster = c }

// clusterStats answers ?scope=cluster.
func (a *API) clusterStats(ctx *fasthttp.RequestCtx) {
	if a.cluster == nil {
		writeJSON(ctx, fasthttp.StatusNotFound, errorBody{Error: proxy.ErrClusterDisabled.Error()})
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := a.cluster.Stats(c)
	if err != nil {
		status := fasthttp.StatusBadGateway
		if errors.Is(err, proxy.ErrClusterDisabled) {
			status = fasthttp.StatusNotFound
		}
		writeJSON(ctx, status, errorBody{Error: err.Error()})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, st)
}
