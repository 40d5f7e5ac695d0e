package observe

import (
	"net"
	"sync/atomic"
	"time"

	"wsproxy/cluster"
	"wsproxy/compat"
	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/dispatch"
	"wsproxy/internal/histogram"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// Lifecycle is what the collection asks of the server that owns the Node.
type Lifecycle interface {
	Draining() bool  // a drain has started
	Accepting() bool // new WebSocket upgrades are accepted
}

// NodeParts are the parts of a node the collection reads.
type NodeParts struct {
	Config  config.Config // defaults applied
	Pool    *pool.Pool
	Index   *subscription.Index[*pool.Conn]
	Disp    *dispatch.Dispatcher
	Sources []dataflow.Source
	Latency *histogram.Histogram // the pool's delivery latency
	// Rejections are the upgrade refusals by reason (admission.Guard).
	Rejections func() map[string]uint64
	Server     Lifecycle
	Started    time.Time
}

// Node collects what a node reports about itself: STATS (and the cached
// getStats reply), the windowed metrics, health, readiness and the client
// error tally. The counters it holds are updated by the server's sessions.
// Safe for concurrent use.
type Node struct {
	p        NodeParts
	win      Window
	memLevel atomic.Pointer[func() string]

	channels  atomic.Int64 // legacy channel subscriptions, all connections
	chanNames channelSet
	lastAct   atomic.Int64
	// internalErrors counts requests the server failed to answer (a
	// server-side failure for health); clientErrs what clients did wrong.
	internalErrors atomic.Uint64
	clientErrs     clientErrors

	stats StatsCache // getStats answers
}

// NewNode starts collecting for the node made of p.
func NewNode(p NodeParts) *Node {
	n := &Node{p: p}
	n.win.Init(p.Config.Metrics.Window)
	n.stats.Build = n.buildStats
	return n
}

// Cache is the getStats cache; Changed on it marks a subscription change.
func (n *Node) Cache() *StatsCache { return &n.stats }

// Touch records client activity now (STATS lastActivity).
func (n *Node) Touch() { n.lastAct.Store(time.Now().UnixMilli()) }

// InternalError counts a request the server failed to answer.
func (n *Node) InternalError() { n.internalErrors.Add(1) }

// Stats returns a snapshot of every counter.
func (n *Node) Stats() Stats {
	ps := n.p.Pool.Stats()
	is := n.p.Index.Stats()
	ds := n.p.Disp.Stats()
	memMB := float64(HeapBytes()) / (1 << 20)
	subs := int64(is.Filters) + n.channels.Load()
	var st Stats
	st.Connection = ConnectionStats{
		TotalConnections:          ps.TotalConnections,
		ActiveConnections:         ps.ActiveConnections,
		TotalSubscriptions:        subs,
		AverageConnectionDuration: ps.AvgDurationMs,
		MessagesForwarded:         ds.Forwarded,
		ErrorsEncountered:         n.clientTotal() + n.internalErrors.Load(),
		LastActivity:              max(n.lastAct.Load(), ds.LastActivity),
		InternalErrors:            n.internalErrors.Load(),
	}
	st.Subscription = SubscriptionStats{
		TotalSubscriptions: subs,
		ActiveFilters:      is.Filters,
		MatchOperations:    is.MatchOperations,
		LastActivity:       is.LastActivity,
	}
	util := 0.0
	if ps.ActiveConnections > 0 {
		util = float64(ps.QueuedFrames) / float64(ps.ActiveConnections*int64(n.p.Pool.Config().QueueMaxMessages)) * 100
	}
	st.Pool = PoolStats{
		TotalConnections:   ps.TotalConnections,
		ActiveConnections:  ps.ActiveConnections,
		ErrorConnections:   ps.ErrorConnections,
		TotalMessagesSent:  ps.MessagesSent,
		TotalBytesSent:     ps.BytesSent,
		AverageLatency:     ps.AvgLatencyMs,
		MemoryUsage:        memMB,
		BufferUtilization:  util,
		ConnectionTurnover: ps.ClosedConnections,
		QueuedMessages:     ps.QueuedFrames,
		QueuedBytes:        ps.QueuedBytes,
		Shed:               ps.Shed,
		MemoryLevel:        ps.Memory.Level,
		SlowConsumerCloses: ps.SlowConsumerCloses,
		ServerWriteErrors:  ps.ServerWriteErrors,
	}
	if n.p.Config.Compression.Enabled {
		zs := n.p.Pool.DeflateStats()
		st.Pool.Compression = &zs
	}
	st.Dataflow = DataflowStats{MessagesForwarded: ds.Forwarded, Dropped: ds.Dropped, Queued: ds.Queued, LastActivity: ds.LastActivity,
		SnapshotOverflow: ds.SnapshotOverflow, SnapshotCounts: ds.SnapshotCounts}
	for _, src := range n.p.Sources {
		st.Dataflow.Sources = append(st.Dataflow.Sources, src.Stats())
	}
	st.Health = n.health(ps.ActiveConnections, memMB, st.Dataflow.Sources)
	return st
}

func (n *Node) health(conns int64, mem float64, sources []dataflow.SourceStatus) HealthStatus {
	v := n.windowed()
	in := HealthInputs{
		AvgLatency:  v.Lat.Mean(),
		MemoryLevel: n.MemoryLevel(),
		Draining:    n.p.Server.Draining(),
	}
	in.ErrorRate, in.Events = v.ErrorRate()
	in.DecodeErrorRate, in.DecodeEvents = v.DecodeErrorRate()
	h := HealthStatus{
		Connections: conns,
		Uptime:      time.Since(n.p.Started).Milliseconds(),
		Draining:    in.Draining,
		Performance: Performance{AvgLatency: float64(in.AvgLatency) / 1e6, MemoryUsage: mem, ErrorRate: in.ErrorRate,
			DecodeErrorRate: in.DecodeErrorRate, MemoryLevel: in.MemoryLevel},
	}
	for _, src := range sources {
		if !src.Connected {
			in.SourcesDown = append(in.SourcesDown, src.Name)
		}
		if src.LastError != "" && (h.LastError == nil || src.LastErrorAt > h.LastError.Timestamp) {
			h.LastError = &LastError{Message: src.Name + ": " + src.LastError, Timestamp: src.LastErrorAt}
		}
	}
	in.SourcesDownTooLong = SourcesDownTooLong(sources, n.p.Started, n.p.Config.Health.SourceDownUnhealthyAfter, time.Now())
	h.Status, h.Reasons = EvaluateHealth(n.p.Config.Health, in)
	return h
}

// ClusterSample is what the node registry (package cluster) publishes of
// this node at each heartbeat; addr is where it listens (nil: nowhere yet).
func (n *Node) ClusterSample(addr net.Addr) cluster.Sample {
	st := n.Stats()
	smp := cluster.Sample{
		Connections:       st.Connection.ActiveConnections,
		MessagesForwarded: st.Dataflow.MessagesForwarded,
		TotalMessagesSent: st.Pool.TotalMessagesSent,
		Health:            st.Health.Status,
		Uptime:            st.Health.Uptime,
	}
	if addr != nil {
		smp.Address = addr.String()
	}
	return smp
}

// CachedStats returns STATS as of at most StatsMaxAge ago.
func (n *Node) CachedStats() Stats { return n.stats.Stats() }

// StatsBuilds reports how many times the cached STATS were computed.
func (n *Node) StatsBuilds() uint64 { return n.stats.Builds() }

// buildStats is the cache's computation: STATS and the legacy part of the
// getStats reply.
func (n *Node) buildStats(now time.Time) (Stats, compat.LegacyStats) {
	return n.Stats(), n.legacyStats(now)
}
