package admin

import (
	"context"
	"errors"
	"time"

	"wsproxy/cluster"

	"github.com/valyala/fasthttp"
)

// ClusterSource answers cluster-wide statistics (cluster.Registry satisfies
// it).
type ClusterSource interface {
	Stats(ctx context.Context) (cluster.Stats, error)
}

// SetCluster enables GET /api/websocket/stats?scope=cluster. Without it
// that query answers 404. Call before serving.
func (a *API) SetCluster(c ClusterSource) { a.cluster = c }

// clusterStats answers ?scope=cluster.
func (a *API) clusterStats(ctx *fasthttp.RequestCtx) {
	if a.cluster == nil {
		writeJSON(ctx, fasthttp.StatusNotFound, errorBody{Error: cluster.ErrDisabled.Error()})
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := a.cluster.Stats(c)
	if err != nil {
		status := fasthttp.StatusBadGateway
		if errors.Is(err, cluster.ErrDisabled) {
			status = fasthttp.StatusNotFound
		}
		writeJSON(ctx, status, errorBody{Error: err.Error()})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, st)
}
