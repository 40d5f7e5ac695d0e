package proxy

import (
	"time"

	"wsproxy/compat"
	"wsproxy/observe"
)

// CachedStats returns STATS as of at most observe.StatsMaxAge ago.
func (s *Server) CachedStats() observe.Stats { return s.stats.Stats() }

// StatsBuilds reports how many times the cached STATS were computed.
func (s *Server) StatsBuilds() uint64 { return s.stats.Builds() }

// buildStats is the cache's computation: STATS and the legacy part of the
// getStats reply.
func (s *Server) buildStats(now time.Time) (observe.Stats, compat.LegacyStats) {
	return s.Stats(), s.legacyStats(now)
}
