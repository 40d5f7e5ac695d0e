package proxy

import (
	"wsproxy/cluster"
	"wsproxy/internal/histogram"
	"wsproxy/observe"
)

// What the node reports about itself is collected by observe.Node; these
// are its answers, as the server's.

// Stats returns a snapshot of every counter.
func (s *Server) Stats() observe.Stats { return s.obs.Stats() }

// CachedStats returns STATS as of at most observe.StatsMaxAge ago.
func (s *Server) CachedStats() observe.Stats { return s.obs.CachedStats() }

// StatsBuilds reports how many times the cached STATS were computed.
func (s *Server) StatsBuilds() uint64 { return s.obs.StatsBuilds() }

// Metrics returns the windowed latency, rates, memory and shedding counters.
func (s *Server) Metrics() observe.Metrics { return s.obs.Metrics() }

// LatencyBuckets returns the cumulative delivery latency histogram since
// start, for Prometheus.
func (s *Server) LatencyBuckets() histogram.Buckets { return s.obs.LatencyBuckets() }

// ClientErrors returns every client-caused event since start by reason
// (observe.Node.ClientErrors).
func (s *Server) ClientErrors() map[string]uint64 { return s.obs.ClientErrors() }

// ErrorBudgetCloses returns how many connections were closed with 1008 for
// sending more than limits.max_bad_frames_per_minute bad frames.
func (s *Server) ErrorBudgetCloses() uint64 { return s.obs.ErrorBudgetCloses() }

// SetMemoryLevel installs the function that reports the memory monitor's
// level to health and metrics (observe.Node.SetMemoryLevel).
func (s *Server) SetMemoryLevel(level func() string) { s.obs.SetMemoryLevel(level) }

// MemoryLevel returns the memory monitor's current level.
func (s *Server) MemoryLevel() string { return s.obs.MemoryLevel() }

// Readiness reports whether the node can serve new clients
// (observe.Node.Readiness: /readyz).
func (s *Server) Readiness() observe.Readiness { return s.obs.Readiness() }

// Accepting reports whether new WebSocket upgrades are accepted: false once
// a drain or the shutdown has started.
func (s *Server) Accepting() bool { return s.accepting.Load() }

// ClusterSample is what the node registry (package cluster) publishes of
// this node at each heartbeat.
func (s *Server) ClusterSample() cluster.Sample { return s.obs.ClusterSample(s.Addr()) }
