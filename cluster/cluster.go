// Package cluster is the node registry: every node writes a heartbeat with
// a TTL to Redis, so that any node can report cluster-wide totals
// (GET /api/websocket/stats?scope=cluster).
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

// ErrDisabled is returned by cluster queries when cluster.enabled is off.
// Its text is part of the admin API's answer.
var ErrDisabled = errors.New("proxy: cluster registry disabled")

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

// Totals sums the live nodes.
type Totals struct {
	Nodes              int     `json:"nodes"`
	Connections        int64   `json:"connections"`
	MessagesPerSecond  float64 `json:"messagesPerSecond"`
	DeliveredPerSecond float64 `json:"deliveredPerSecond"`
	MessagesForwarded  uint64  `json:"messagesForwarded"`
	TotalMessagesSent  uint64  `json:"totalMessagesSent"`
}

// Stats answers GET /api/websocket/stats?scope=cluster.
type Stats struct {
	Scope  string     `json:"scope"`
	Self   string     `json:"self"`
	Totals Totals     `json:"totals"`
	Nodes  []NodeInfo `json:"nodes"`
}

// Sample is what the registry reads of the local node at each heartbeat.
type Sample struct {
	// Address is the listening address ("" before the node listens).
	Address           string
	Connections       int64
	MessagesForwarded uint64
	TotalMessagesSent uint64
	Health            string
	Uptime            int64
}

// Registry is this node's membership in the registry. Run writes the
// heartbeat; Stats reads every live record. Safe for concurrent use.
type Registry struct {
	cfg    config.ClusterConfig
	sample func() Sample
	log    zerolog.Logger
	rdb    *redis.Client

	mu       sync.Mutex
	lastAt   time.Time
	lastFwd  uint64
	lastSent uint64
}

// New returns the registry of the node that sample describes, or nil when
// cfg is disabled. cfg has its defaults applied (config.ApplyDefaults).
func New(cfg config.ClusterConfig, sample func() Sample, log zerolog.Logger) *Registry {
	if !cfg.Enabled {
		return nil
	}
	if cfg.NodeID == "" {
		host, _ := os.Hostname()
		cfg.NodeID = host + "-" + strconv.Itoa(os.Getpid())
	}
	return &Registry{
		cfg: cfg, sample: sample,
		log: log.With().Str("component", "cluster").Str("node_id", cfg.NodeID).Logger(),
		rdb: redis.NewClient(&redis.Options{
			Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB,
			PoolSize: 2, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		}),
	}
}

// NodeID returns this node's id.
func (c *Registry) NodeID() string { return c.cfg.NodeID }

// Run heartbeats until ctx ends, then removes this node's record.
func (c *Registry) Run(ctx context.Context) {
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

func (c *Registry) key() string { return c.cfg.KeyPrefix + c.cfg.NodeID }

func (c *Registry) beat(ctx context.Context) error {
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
func (c *Registry) self() NodeInfo {
	st := c.sample()
	now := time.Now()
	addr := c.cfg.Address
	if addr == "" {
		addr = st.Address
	}
	info := NodeInfo{
		NodeID: c.cfg.NodeID, Address: addr,
		Connections:       st.Connections,
		MessagesForwarded: st.MessagesForwarded,
		TotalMessagesSent: st.TotalMessagesSent,
		Health:            st.Health,
		Uptime:            st.Uptime,
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
func (c *Registry) Stats(ctx context.Context) (Stats, error) {
	if c == nil {
		return Stats{}, ErrDisabled
	}
	var keys []string
	iter := c.rdb.Scan(ctx, 0, c.cfg.KeyPrefix+"*", 200).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return Stats{}, fmt.Errorf("cluster: scan: %w", err)
	}
	out := Stats{Scope: "cluster", Self: c.cfg.NodeID, Nodes: []NodeInfo{}}
	if len(keys) > 0 {
		vals, err := c.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return Stats{}, fmt.Errorf("cluster: mget: %w", err)
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
