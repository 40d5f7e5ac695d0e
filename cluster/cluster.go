package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
	"wsproxy/config"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// ErrClusterDisabled is returned by cluster queries when cluster.enabled is
// off.
var ErrClusterDisabled = errors.New("proxy: cluster registry disabled")

// NodeInfo is one node's heartbeat record.
type NodeInfo struct {
	NodeID             string  `json:"nodeId"`
	Address            string  `json:"address"`
	Connections        int64   `json:"connections"`
	MessagesPerSecond  float64 `json:"messagesPerSecond"`
	DeliveredPerSecond float64 `json:"deliveredPerSecond"`
	MessagesForwarded  uint64  `json:"messagesForwarded"`
	TotalMessagesSent  uint64  `json:"totalMessagesSent"`
	Health             string  `json:"health"`
	Uptime             int64   `json:"uptime"`
	UpdatedAt          int64   `json:"updatedAt"`
}

// ClusterTotals sums the live nodes.
type ClusterTotals struct {
	Nodes              int     `json:"nodes"`
	Connections        int64   `json:"connections"`
	MessagesPerSecond  float64 `json:"messagesPerSecond"`
	DeliveredPerSecond float64 `json:"deliveredPerSecond"`
	MessagesForwarded  uint64  `json:"messagesForwarded"`
	TotalMessagesSent  uint64  `json:"totalMessagesSent"`
}

// ClusterStats answers GET /api/websocket/stats?scope=cluster.
type ClusterStats struct {
	Scope  string        `json:"scope"`
	Self   string        `json:"self"`
	Totals ClusterTotals `json:"totals"`
	Nodes  []NodeInfo    `json:"nodes"`
}

// Cluster is this node's membership in the registry. Run writes the
// heartbeat; Stats reads every live record. Safe for concurrent use.
type Cluster struct {
	cfg config.ClusterConfig
	srv *Server
	log zerolog.Logger
	rdb *redis.Client

	mu       sync.Mutex
	lastAt   time.Time
	lastFwd  uint64
	lastSent uint64
}

// NewCluster returns the registry of srv, or nil when cfg is disabled. cfg
// has its defaults applied (config.ApplyDefaults).
func NewCluster(cfg config.ClusterConfig, srv *Server) *Cluster {
	if !cfg.Enabled {
		return nil
	}
	if cfg.NodeID == "" {
		host, _ := os.Hostname()
		cfg.NodeID = host + "-" + strconv.Itoa(os.Getpid())
	}
	return &Cluster{
		cfg: cfg, srv: srv,
		log: srv.Logger().With().Str("component", "cluster").Str("node_id", cfg.NodeID).Logger(),
		rdb: redis.NewClient(&redis.Options{
			Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB,
			PoolSize: 2, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		}),
	}
}

// NodeID returns this node's id.
func (c *Cluster) NodeID() string { return c.cfg.NodeID }

// Run heartbeats until ctx ends, then removes this node's record.
func (c *Cluster) Run(ctx context.Context) {
	defer c.rdb.Close()
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	failing := false
	for {
		err := c.beat(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			c.log.Warn().Err(err).Msg("cluster heartbeat failed")
			failing = true
		case err == nil && failing:
			c.log.Info().Msg("cluster heartbeat restored")
			failing = false
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.rdb.Del(dctx, c.key()).Err() // best effort: the TTL removes it anyway
			cancel()
			return
		case <-t.C:
		}
	}
}

func (c *Cluster) key() string { return c.cfg.KeyPrefix + c.cfg.NodeID }

func (c *Cluster) beat(ctx context.Context) error {
	info := c.self()
	b, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("cluster: encode: %w", err)
	}
	if err := c.rdb.Set(ctx, c.key(), b, c.cfg.TTL).Err(); err != nil {
		return fmt.Errorf("cluster: heartbeat: %w", err)
	}
	return nil
}

// self samples this node's record; rates are over the time since the last
// sample.
func (c *Cluster) self() NodeInfo {
	st := c.srv.Stats()
	now := time.Now()
	addr := c.cfg.Address
	if addr == "" {
		if a := c.srv.Addr(); a != nil {
			addr = a.String()
		}
	}
	info := NodeInfo{
		NodeID: c.cfg.NodeID, Address: addr,
		Connections:       st.Connection.ActiveConnections,
		MessagesForwarded: st.Dataflow.MessagesForwarded,
		TotalMessagesSent: st.Pool.TotalMessagesSent,
		Health:            st.Health.Status,
		Uptime:            st.Health.Uptime,
		UpdatedAt:         now.UnixMilli(),
	}
	c.mu.Lock()
	if !c.lastAt.IsZero() {
		if dt := now.Sub(c.lastAt).Seconds(); dt > 0 {
			info.MessagesPerSecond = float64(info.MessagesForwarded-c.lastFwd) / dt
			info.DeliveredPerSecond = float64(info.TotalMessagesSent-c.lastSent) / dt
		}
	}
	c.lastAt, c.lastFwd, c.lastSent = now, info.MessagesForwarded, info.TotalMessagesSent
	c.mu.Unlock()
	return info
}

// Stats lists every live node (records whose TTL has not expired) and sums
// them.
func (c *Cluster) Stats(ctx context.Context) (ClusterStats, error) {
	if c == nil {
		return ClusterStats{}, ErrClusterDisabled
	}
	var keys []string
	iter := c.rdb.Scan(ctx, 0, c.cfg.KeyPrefix+"*", 200).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return ClusterStats{}, fmt.Errorf("cluster: scan: %w", err)
	}
	out := ClusterStats{Scope: "cluster", Self: c.cfg.NodeID, Nodes: []NodeInfo{}}
	if len(keys) > 0 {
		vals, err := c.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return ClusterStats{}, fmt.Errorf("cluster: mget: %w", err)
		}
		for _, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // expired between SCAN and MGET
			}
			var n NodeInfo
			if json.Unmarshal([]byte(s), &n) != nil {
				continue
			}
			out.Nodes = append(out.Nodes, n)
		}
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].NodeID < out.Nodes[j].NodeID })
	for _, n := range out.Nodes {
		out.Totals.Nodes++
		out.Totals.Connections += n.Connections
		out.Totals.MessagesPerSecond += n.MessagesPerSecond
		out.Totals.DeliveredPerSecond += n.DeliveredPerSecond
		out.Totals.MessagesForwarded += n.MessagesForwarded
		out.Totals.TotalMessagesSent += n.TotalMessagesSent
	}
	return out, nil
}
