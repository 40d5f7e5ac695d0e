package proxy

import (
	"time"

	"wsproxy/dataflow"
)

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
