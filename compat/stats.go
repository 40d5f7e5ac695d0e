package compat

import (
	"encoding/json"
	"fmt"
)

// LegacyStats is the part of the getStats reply that the deployed legacy
// server (A) sent. The reply's payload is a superset of both legacy shapes:
// these four keys, then the keys of the proxy's own statistics, which carry
// the refactored proxy's (B's) connection, subscription, health and pool
// (PROTOCOL.md, STATS).
type LegacyStats struct {
	Connections   LegacyConnections   `json:"connections"`
	Subscriptions LegacySubscriptions `json:"subscriptions"`
	// Adapters is always empty: wsproxy has no exchange adapters (its
	// sources are listed under dataflow.sources).
	Adapters []struct{}   `json:"adapters"`
	Server   LegacyServer `json:"server"`
}

// LegacyConnections counts live connections. A's total and active were
// both the size of its connection map.
type LegacyConnections struct {
	Total  int64 `json:"total"`
	Active int64 `json:"active"`
	// AvgDuration is the mean age of the live connections, ms.
	AvgDuration float64 `json:"avgDuration"`
}

// LegacySubscriptions counts legacy channel subscriptions.
type LegacySubscriptions struct {
	// Total is the number of (connection, channel) subscriptions.
	Total int64 `json:"total"`
	// Channels lists the distinct channels subscribed, sorted.
	Channels []string `json:"channels"`
}

// LegacyServer describes the process.
type LegacyServer struct {
	// Uptime is in seconds, as A reported it.
	Uptime    float64      `json:"uptime"`
	Memory    LegacyMemory `json:"memory"`
	Timestamp int64        `json:"timestamp"`
}

// LegacyMemory has the keys of Node's process.memoryUsage(), filled from
// the Go runtime: rss is the process's resident set, heapTotal the heap
// obtained from the OS, heapUsed the live heap; external and arrayBuffers
// have no Go counterpart and are 0.
type LegacyMemory struct {
	RSS          uint64 `json:"rss"`
	HeapTotal    uint64 `json:"heapTotal"`
	HeapUsed     uint64 `json:"heapUsed"`
	External     uint64 `json:"external"`
	ArrayBuffers uint64 `json:"arrayBuffers"`
}

// AppendStatsReply appends the reply to getStats:
// {"type":"stats","payload":{A's keys..., stats' keys...},"timestamp":T},
// where stats must encode to a JSON object whose keys differ from A's
// (connections, subscriptions, adapters, server). On error dst is returned
// unchanged.
func AppendStatsReply(dst []byte, legacy LegacyStats, stats any, ts int64) ([]byte, error) {
	if legacy.Subscriptions.Channels == nil {
		legacy.Subscriptions.Channels = []string{}
	}
	if legacy.Adapters == nil {
		legacy.Adapters = []struct{}{}
	}
	a, err := json.Marshal(legacy)
	if err != nil {
		return dst, fmt.Errorf("compat: encode stats: %w", err)
	}
	b, err := json.Marshal(stats)
	if err != nil {
		return dst, fmt.Errorf("compat: encode stats: %w", err)
	}
	if len(b) < 2 || b[0] != '{' {
		return dst, fmt.Errorf("compat: encode stats: %T is not a JSON object", stats)
	}
	dst = append(dst, `{"type":"stats","payload":`...)
	dst = append(dst, a[:len(a)-1]...)
	if len(b) > 2 {
		dst = append(dst, ',')
		dst = append(dst, b[1:]...)
	} else {
		dst = append(dst, '}')
	}
	return appendTimestamp(dst, ts), nil
}
