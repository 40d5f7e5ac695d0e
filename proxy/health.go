package proxy

import "wsproxy/observe"

// SetMemoryLevel installs the function that reports the memory monitor's
// level (observe.MemoryNormal, MemoryElevated, MemoryCritical) to health and
// metrics. Until one is installed the level is the pool's. Safe to call at
// any time.
func (s *Server) SetMemoryLevel(level func() string) { s.op.memLevel.Store(&level) }

// MemoryLevel returns the memory monitor's current level.
func (s *Server) MemoryLevel() string {
	if f := s.op.memLevel.Load(); f != nil && *f != nil {
		if l := (*f)(); l != "" {
			return l
		}
	}
	return s.pool.MemoryLevel()
}

// Accepting reports whether new WebSocket upgrades are accepted: false once
// a drain or the shutdown has started.
func (s *Server) Accepting() bool { return s.accepting.Load() }

// Readiness is the answer of /readyz: whether the node can serve new
// clients, and why not.
type Readiness struct {
	Ready   bool
	Reasons []string
}

// Readiness reports whether the node can serve new clients: it accepts
// upgrades (no drain, no shutdown), its memory level is below critical and,
// with health.ready_requires_source (the default), at least one of its
// sources is connected (a node without any source is not judged on it).
// Nothing a client sends and no latency or error-rate figure enters it:
// those are health's business, and taking a node out of rotation for them
// would let one client take every node out in turn.
func (s *Server) Readiness() Readiness {
	var r Readiness
	switch {
	case s.Draining():
		r.Reasons = append(r.Reasons, "draining")
	case !s.Accepting():
		r.Reasons = append(r.Reasons, "shutting down")
	}
	if s.MemoryLevel() == observe.MemoryCritical {
		r.Reasons = append(r.Reasons, "memory level critical")
	}
	if *s.cfg.Health.ReadyRequiresSource && len(s.sources) > 0 {
		up := false
		for _, src := range s.sources {
			if src.Stats().Connected {
				up = true
				break
			}
		}
		if !up {
			r.Reasons = append(r.Reasons, "no source connected")
		}
	}
	r.Ready = len(r.Reasons) == 0
	return r
}
