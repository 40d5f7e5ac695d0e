package proxy

import (
	"wsproxy/pool"
)

// Flush starts a write of every pending frame on every connection now,
// whatever batch.flush_interval says, and reports what it started.
func (s *Server) Flush() pool.FlushResult { return s.pool.FlushAll() }

// DrainState reports the drain under way, or Draining false when none has
// started.
func (s *Server) DrainState() DrainStatus {
	s.op.drainMu.Lock()
	defer s.op.drainMu.Unlock()
	if s.op.drain == nil {
		return DrainStatus{Remaining: s.pool.Len()}
	}
	st := *s.op.drain
	st.Remaining = s.pool.Len()
	return st
}
