package observe

import (
	"slices"
	"sync"
	"time"

	"wsproxy/compat"
	"wsproxy/pool"
)

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

// AddChannel counts a connection's subscription to the legacy channel name.
func (n *Node) AddChannel(name string) {
	n.channels.Add(1)
	n.chanNames.add(name)
}

// RemoveChannel undoes one AddChannel of name.
func (n *Node) RemoveChannel(name string) {
	n.channels.Add(-1)
	n.chanNames.remove(name)
}

// legacyStats gathers the deployed legacy server's part of the getStats
// reply (compat.LegacyStats). It is the one place that data is collected.
func (n *Node) legacyStats(now time.Time) compat.LegacyStats {
	var ls compat.LegacyStats
	var count int64
	var age time.Duration
	n.p.Pool.Each(func(c *pool.Conn) {
		count++
		age += now.Sub(c.ConnectedAt())
	})
	ls.Connections.Total, ls.Connections.Active = count, count
	if count > 0 {
		ls.Connections.AvgDuration = float64(age.Milliseconds()) / float64(count)
	}
	ls.Subscriptions.Total = n.channels.Load()
	ls.Subscriptions.Channels = n.chanNames.names()
	ls.Server.Uptime = now.Sub(n.p.Started).Seconds()
	ls.Server.Memory = ProcessMemory()
	ls.Server.Timestamp = now.UnixMilli()
	return ls
}
