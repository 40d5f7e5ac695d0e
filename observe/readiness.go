package observe

// SetMemoryLevel installs the function that reports the memory monitor's
// level (MemoryNormal, MemoryElevated, MemoryCritical) to health and
// metrics. Until one is installed the level is the pool's. Safe to call at
// any time.
func (n *Node) SetMemoryLevel(level func() string) { n.memLevel.Store(&level) }

// MemoryLevel returns the memory monitor's current level.
func (n *Node) MemoryLevel() string {
	if f := n.memLevel.Load(); f != nil && *f != nil {
		if l := (*f)(); l != "" {
			return l
		}
	}
	return n.p.Pool.MemoryLevel()
}

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
func (n *Node) Readiness() Readiness {
	var r Readiness
	switch {
	case n.p.Server.Draining():
		r.Reasons = append(r.Reasons, "draining")
	case !n.p.Server.Accepting():
		r.Reasons = append(r.Reasons, "shutting down")
	}
	if n.MemoryLevel() == MemoryCritical {
		r.Reasons = append(r.Reasons, "memory level critical")
	}
	if *n.p.Config.Health.ReadyRequiresSource && len(n.p.Sources) > 0 {
		up := false
		for _, src := range n.p.Sources {
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
