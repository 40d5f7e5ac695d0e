package proxy

import (
	"time"

	"wsproxy/dataflow"
)

// HealthConfig tunes how source state maps to health.
type HealthConfig struct {
	// SourceDownUnhealthyAfter: a source disconnected for longer than this
	// turns health from "degraded" to "unhealthy" (HTTP 503 on
	// /api/websocket/health). 0: 60s.
	SourceDownUnhealthyAfter time.Duration `yaml:"source_down_unhealthy_after"`
}

func (c *HealthConfig) applyDefaults() {
	defDur(&c.SourceDownUnhealthyAfter, 60*time.Second)
}

// sourcesDownTooLong reports whether a source has been disconnected for
// longer than health.source_down_unhealthy_after. A source that never
// connected counts from the server's start.
func (s *Server) sourcesDownTooLong(sources []dataflow.SourceStatus, now time.Time) bool {
	for _, src := range sources {
		if src.Connected {
			continue
		}
		since := max(src.Since, s.started.UnixMilli())
		if now.UnixMilli()-since > s.cfg.Health.SourceDownUnhealthyAfter.Milliseconds() {
			return true
		}
	}
	return false
}
