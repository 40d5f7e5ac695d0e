package proxy

import (
	"time"

	"wsproxy/cluster"
	"wsproxy/dataflow"
	"wsproxy/observe"
)

// Stats returns a snapshot of every counter.
func (s *Server) Stats() observe.Stats {
	ps := s.pool.Stats()
	is := s.index.Stats()
	ds := s.disp.Stats()
	memMB := float64(observe.HeapBytes()) / (1 << 20)
	subs := int64(is.Filters) + s.channels.Load()
	var st observe.Stats
	st.Connection = observe.ConnectionStats{
		TotalConnections:          ps.TotalConnections,
		ActiveConnections:         ps.ActiveConnections,
		TotalSubscriptions:        subs,
		AverageConnectionDuration: ps.AvgDurationMs,
		MessagesForwarded:         ds.Forwarded,
		ErrorsEncountered:         s.clientTotal() + s.internalErrors.Load(),
		LastActivity:              max(s.lastAct.Load(), ds.LastActivity),
		InternalErrors:            s.internalErrors.Load(),
	}
	st.Subscription = observe.SubscriptionStats{
		TotalSubscriptions: subs,
		ActiveFilters:      is.Filters,
		MatchOperations:    is.MatchOperations,
		LastActivity:       is.LastActivity,
	}
	util := 0.0
	if ps.ActiveConnections > 0 {
		util = float64(ps.QueuedFrames) / float64(ps.ActiveConnections*int64(s.pool.Config().QueueMaxMessages)) * 100
	}
	st.Pool = observe.PoolStats{
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
	st.Dataflow = observe.DataflowStats{MessagesForwarded: ds.Forwarded, Dropped: ds.Dropped, Queued: ds.Queued, LastActivity: ds.LastActivity,
		SnapshotOverflow: ds.SnapshotOverflow, SnapshotCounts: ds.SnapshotCounts}
	for _, src := range s.sources {
		st.Dataflow.Sources = append(st.Dataflow.Sources, src.Stats())
	}
	st.Health = s.health(ps.ActiveConnections, memMB, st.Dataflow.Sources)
	return st
}

func (s *Server) health(conns int64, mem float64, sources []dataflow.SourceStatus) observe.HealthStatus {
	v := s.windowed()
	in := observe.HealthInputs{
		AvgLatency:  v.Lat.Mean(),
		MemoryLevel: s.MemoryLevel(),
		Draining:    s.Draining(),
	}
	in.ErrorRate, in.Events = v.ErrorRate()
	in.DecodeErrorRate, in.DecodeEvents = v.DecodeErrorRate()
	h := observe.HealthStatus{
		Connections: conns,
		Uptime:      time.Since(s.started).Milliseconds(),
		Draining:    in.Draining,
		Performance: observe.Performance{AvgLatency: float64(in.AvgLatency) / 1e6, MemoryUsage: mem, ErrorRate: in.ErrorRate,
			DecodeErrorRate: in.DecodeErrorRate, MemoryLevel: in.MemoryLevel},
	}
	for _, src := range sources {
		if !src.Connected {
			in.SourcesDown = append(in.SourcesDown, src.Name)
		}
		if src.LastError != "" && (h.LastError == nil || src.LastErrorAt > h.LastError.Timestamp) {
			h.LastError = &observe.LastError{Message: src.Name + ": " + src.LastError, Timestamp: src.LastErrorAt}
		}
	}
	in.SourcesDownTooLong = observe.SourcesDownTooLong(sources, s.started, s.cfg.Health.SourceDownUnhealthyAfter, time.Now())
	h.Status, h.Reasons = observe.EvaluateHealth(s.cfg.Health, in)
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
