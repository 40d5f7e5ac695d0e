package proxy

import (
	"time"

	"wsproxy/cluster"
	"wsproxy/dataflow"
	"wsproxy/dispatch"
	"wsproxy/pool"
)

// Stats is the STATS object of PROTOCOL.md, answered to getStats and by the
// admin API.
type Stats struct {
	Connection   ConnectionStats   `json:"connection"`
	Subscription SubscriptionStats `json:"subscription"`
	Pool         PoolStats         `json:"pool"`
	Dataflow     DataflowStats     `json:"dataflow"`
	Health       HealthStatus      `json:"health"`
}

// ConnectionStats: messagesForwarded counts pipeline messages dispatched
// (once per message, whatever the number of recipients).
type ConnectionStats struct {
	TotalConnections          uint64  `json:"totalConnections"`
	ActiveConnections         int64   `json:"activeConnections"`
	TotalSubscriptions        int64   `json:"totalSubscriptions"`
	AverageConnectionDuration float64 `json:"averageConnectionDuration"`
	MessagesForwarded         uint64  `json:"messagesForwarded"`
	ErrorsEncountered         uint64  `json:"errorsEncountered"`
	LastActivity              int64   `json:"lastActivity"`
	// InternalErrors counts client requests the server failed to answer (a
	// server-side failure; errorsEncountered adds every client error).
	InternalErrors uint64 `json:"internalErrors"`
}

// SubscriptionStats describes the index.
type SubscriptionStats struct {
	TotalSubscriptions int64  `json:"totalSubscriptions"`
	ActiveFilters      int    `json:"activeFilters"`
	MatchOperations    uint64 `json:"matchOperations"`
	LastActivity       int64  `json:"lastActivity"`
}

// PoolStats describes delivery. totalMessagesSent counts data frames
// written to sockets (once per recipient); connectionTurnover counts closed
// connections.
type PoolStats struct {
	TotalConnections   uint64            `json:"totalConnections"`
	ActiveConnections  int64             `json:"activeConnections"`
	ErrorConnections   uint64            `json:"errorConnections"`
	TotalMessagesSent  uint64            `json:"totalMessagesSent"`
	TotalBytesSent     uint64            `json:"totalBytesSent"`
	AverageLatency     float64           `json:"averageLatency"`
	MemoryUsage        float64           `json:"memoryUsage"`
	BufferUtilization  float64           `json:"bufferUtilization"`
	ConnectionTurnover uint64            `json:"connectionTurnover"`
	QueuedMessages     int64             `json:"queuedMessages"`
	QueuedBytes        int64             `json:"queuedBytes"`
	Shed               map[string]uint64 `json:"shed"`
	// MemoryLevel is the memory monitor's level: normal, elevated, critical.
	MemoryLevel        string `json:"memoryLevel"`
	SlowConsumerCloses uint64 `json:"slowConsumerCloses"`
	// ServerWriteErrors are the errorConnections the server caused (not a
	// client reset, not a client that stopped reading): health counts them.
	ServerWriteErrors uint64 `json:"serverWriteErrors"`
	// Compression: permessage-deflate counters, present when
	// compression.enabled is on.
	Compression *pool.DeflateStats `json:"compression,omitempty"`
}

// DataflowStats describes the input side.
type DataflowStats struct {
	MessagesForwarded uint64                  `json:"messagesForwarded"`
	Dropped           uint64                  `json:"dropped"`
	Queued            int                     `json:"queued"`
	LastActivity      int64                   `json:"lastActivity"`
	Sources           []dataflow.SourceStatus `json:"sources"`
	SnapshotOverflow  uint64                  `json:"snapshotOverflow"`
	dispatch.SnapshotCounts
}

// HealthStatus of PROTOCOL.md. Reasons explains a status other than
// healthy; Draining is set once a drain has started (both extensions,
// omitted when empty).
type HealthStatus struct {
	Status      string      `json:"status"`
	Connections int64       `json:"connections"`
	Uptime      int64       `json:"uptime"`
	LastError   *LastError  `json:"lastError,omitempty"`
	Performance Performance `json:"performance"`
	Reasons     []string    `json:"reasons,omitempty"`
	Draining    bool        `json:"draining,omitempty"`
}

// LastError is the most recent error a source reported.
type LastError struct {
	Message   string `json:"message"`
	Timestamp int64  `json:"timestamp"`
}

// Performance summarises latency (ms, average over metrics.window) and
// memory (MB); errorRate (server-side failures), decodeErrorRate (source
// messages rejected) and memoryLevel are the other health inputs.
type Performance struct {
	AvgLatency      float64 `json:"avgLatency"`
	MemoryUsage     float64 `json:"memoryUsage"`
	ErrorRate       float64 `json:"errorRate"`
	DecodeErrorRate float64 `json:"decodeErrorRate"`
	MemoryLevel     string  `json:"memoryLevel,omitempty"`
}

// Stats returns a snapshot of every counter.
func (s *Server) Stats() Stats {
	ps := s.pool.Stats()
	is := s.index.Stats()
	ds := s.disp.Stats()
	memMB := float64(heapBytes()) / (1 << 20)
	subs := int64(is.Filters) + s.channels.Load()
	var st Stats
	st.Connection = ConnectionStats{
		TotalConnections:          ps.TotalConnections,
		ActiveConnections:         ps.ActiveConnections,
		TotalSubscriptions:        subs,
		AverageConnectionDuration: ps.AvgDurationMs,
		MessagesForwarded:         ds.Forwarded,
		ErrorsEncountered:         s.clientTotal() + s.internalErrors.Load(),
		LastActivity:              max(s.lastAct.Load(), ds.LastActivity),
		InternalErrors:            s.internalErrors.Load(),
	}
	st.Subscription = SubscriptionStats{
		TotalSubscriptions: subs,
		ActiveFilters:      is.Filters,
		MatchOperations:    is.MatchOperations,
		LastActivity:       is.LastActivity,
	}
	util := 0.0
	if ps.ActiveConnections > 0 {
		util = float64(ps.QueuedFrames) / float64(ps.ActiveConnections*int64(s.pool.Config().QueueMaxMessages)) * 100
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
	if s.cfg.Compression.Enabled {
		zs := s.pool.DeflateStats()
		st.Pool.Compression = &zs
	}
	st.Dataflow = DataflowStats{MessagesForwarded: ds.Forwarded, Dropped: ds.Dropped, Queued: ds.Queued, LastActivity: ds.LastActivity,
		SnapshotOverflow: ds.SnapshotOverflow, SnapshotCounts: ds.SnapshotCounts}
	for _, src := range s.sources {
		st.Dataflow.Sources = append(st.Dataflow.Sources, src.Stats())
	}
	st.Health = s.health(ps.ActiveConnections, memMB, st.Dataflow.Sources)
	return st
}

func (s *Server) health(conns int64, mem float64, sources []dataflow.SourceStatus) HealthStatus {
	v := s.windowed()
	in := HealthInputs{
		AvgLatency:  v.lat.Mean(),
		MemoryLevel: s.MemoryLevel(),
		Draining:    s.Draining(),
	}
	in.ErrorRate, in.Events = v.errorRate()
	in.DecodeErrorRate, in.DecodeEvents = v.decodeErrorRate()
	h := HealthStatus{
		Connections: conns,
		Uptime:      time.Since(s.started).Milliseconds(),
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
	in.SourcesDownTooLong = s.sourcesDownTooLong(sources, time.Now())
	h.Status, h.Reasons = EvaluateHealth(s.cfg.Health, in)
	return h
}

// ClusterSample is what the node registry (package cluster) publishes of
// this node at each heartbeat.
func (s *Server) ClusterSample() cluster.Sample {
	st := s.Stats()
	smp := cluster.Sample{
		Connections:       st.Connection.ActiveConnections,
		MessagesForwarded: st.Dataflow.MessagesForwarded,
		TotalMessagesSent: st.Pool.TotalMessagesSent,
		Health:            st.Health.Status,
		Uptime:            st.Health.Uptime,
	}
	if a := s.Addr(); a != nil {
		smp.Address = a.String()
	}
	return smp
}
