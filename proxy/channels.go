package proxy

import (
	"slices"
	"sync"
	"time"

	"wsproxy/compat"
	"wsproxy/observe"
	"wsproxy/pool"
)

// maxChannelLen bounds a legacy channel name: the channel form accepts any
// string (as the legacy server did), so names are bounded and a longer one
// is a bad client frame.
const maxChannelLen = 64

// channelSet counts the legacy channel subscriptions of every connection,
// for getStats (A's subscriptions.total and channels). Safe for concurrent
// use.
type channelSet struct {
	mu sync.Mutex
	n  map[string]int // guarded by mu
}

func (cs *channelSet) add(name string) {
	cs.mu.Lock()
	if cs.n == nil {
		cs.n = make(map[string]int)
	}
	cs.n[name]++
	cs.mu.Unlock()
}

func (cs *channelSet) remove(name string) {
	cs.mu.Lock()
	if cs.n[name] <= 1 {
		delete(cs.n, name)
	} else {
		cs.n[name]--
	}
	cs.mu.Unlock()
}

// names returns the distinct channels subscribed, sorted.
func (cs *channelSet) names() []string {
	cs.mu.Lock()
	out := make([]string, 0, len(cs.n))
	for k := range cs.n {
		out = append(out, k)
	}
	cs.mu.Unlock()
	slices.Sort(out)
	return out
}

// legacyStats gathers the deployed legacy server's part of the getStats
// reply (compat.LegacyStats). It is the one place that data is collected.
func (s *Server) legacyStats(now time.Time) compat.LegacyStats {
	var ls compat.LegacyStats
	var n int64
	var age time.Duration
	s.pool.Each(func(c *pool.Conn) {
		n++
		age += now.Sub(c.ConnectedAt())
	})
	ls.Connections.Total, ls.Connections.Active = n, n
	if n > 0 {
		ls.Connections.AvgDuration = float64(age.Milliseconds()) / float64(n)
	}
	ls.Subscriptions.Total = s.channels.Load()
	ls.Subscriptions.Channels = s.chanNames.names()
	ls.Server.Uptime = now.Sub(s.started).Seconds()
	ls.Server.Memory = observe.ProcessMemory()
	ls.Server.Timestamp = now.UnixMilli()
	return ls
}
