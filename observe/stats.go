package observe

import (
	"wsproxy/dataflow"
	"wsproxy/dispatch"
	"wsproxy/pool"
)

// Stats is the STATS object of PROTOCOL.md, answered to getStats and by the
// admin API.
type Stats struct {
	Connection   ConnectionStats   `json:"connection"`
	Subscription SubscriptionStats `json:"subscription"`
	Pool         PoolStats         `json:"pool"`
	Dataflow     DataflowStats     `json:"dataflow"`
	Health       HealthStatus      `json:"health"`
}

// ConnectionStats: messagesForwarded counts pipeline messages dispatched
// (once per message, whatever the number of recipients).
type ConnectionStats struct {
	TotalConnections          uint64  `json:"totalConnections"`
	ActiveConnections         int64   `json:"activeConnections"`
	TotalSubscriptions        int64   `json:"totalSubscriptions"`
	AverageConnectionDuration float64 `json:"averageConnectionDuration"`
	MessagesForwarded         uint64  `json:"messagesForwarded"`
	ErrorsEncountered         uint64  `json:"errorsEncountered"`
	LastActivity              int64   `json:"lastActivity"`
	// InternalErrors counts client requests the server failed to answer (a
	// server-side failure; errorsEncountered adds every client error).
	InternalErrors uint64 `json:"internalErrors"`
}

// SubscriptionStats describes the index.
type SubscriptionStats struct {
	TotalSubscriptions int64  `json:"totalSubscriptions"`
	ActiveFilters      int    `json:"activeFilters"`
	MatchOperations    uint64 `json:"matchOperations"`
	LastActivity       int64  `json:"lastActivity"`
}

// PoolStats describes delivery. totalMessagesSent counts data frames
// written to sockets (once per recipient); connectionTurnover counts closed
// connections.
type PoolStats struct {
	TotalConnections   uint64            `json:"totalConnections"`
	ActiveConnections  int64             `json:"activeConnections"`
	ErrorConnections   uint64            `json:"errorConnections"`
	TotalMessagesSent  uint64            `json:"totalMessagesSent"`
	TotalBytesSent     uint64            `json:"totalBytesSent"`
	AverageLatency     float64           `json:"averageLatency"`
	MemoryUsage        float64           `json:"memoryUsage"`
	BufferUtilization  float64           `json:"bufferUtilization"`
	ConnectionTurnover uint64            `json:"connectionTurnover"`
	QueuedMessages     int64             `json:"queuedMessages"`
	QueuedBytes        int64             `json:"queuedBytes"`
	Shed               map[string]uint64 `json:"shed"`
	// MemoryLevel is the memory monitor's level: normal, elevated, critical.
	MemoryLevel        string `json:"memoryLevel"`
	SlowConsumerCloses uint64 `json:"slowConsumerCloses"`
	// ServerWriteErrors are the errorConnections the server caused (not a
	// client reset, not a client that stopped reading): health counts them.
	ServerWriteErrors uint64 `json:"serverWriteErrors"`
	// Compression: permessage-deflate counters, present when
	// compression.enabled is on.
	Compression *pool.DeflateStats `json:"compression,omitempty"`
}

// DataflowStats describes the input side.
type DataflowStats struct {
	MessagesForwarded uint64                  `json:"messagesForwarded"`
	Dropped           uint64                  `json:"dropped"`
	Queued            int                     `json:"queued"`
	LastActivity      int64                   `json:"lastActivity"`
	Sources           []dataflow.SourceStatus `json:"sources"`
	SnapshotOverflow  uint64                  `json:"snapshotOverflow"`
	dispatch.SnapshotCounts
}

// HealthStatus of PROTOCOL.md. Reasons explains a status other than
// healthy; Draining is set once a drain has started (both extensions,
// omitted when empty).
type HealthStatus struct {
	Status      string      `json:"status"`
	Connections int64       `json:"connections"`
	Uptime      int64       `json:"uptime"`
	LastError   *LastError  `json:"lastError,omitempty"`
	Performance Performance `json:"performance"`
	Reasons     []string    `json:"reasons,omitempty"`
	Draining    bool        `json:"draining,omitempty"`
}

// LastError is the most recent error a source reported.
type LastError struct {
	Message   string `json:"message"`
	Timestamp int64  `json:"timestamp"`
}

// Performance summarises latency (ms, average over metrics.window) and
// memory (MB); errorRate (server-side failures), decodeErrorRate (source
// messages rejected) and memoryLevel are the other health inputs.
type Performance struct {
	AvgLatency      float64 `json:"avgLatency"`
	MemoryUsage     float64 `json:"memoryUsage"`
	ErrorRate       float64 `json:"errorRate"`
	DecodeErrorRate float64 `json:"decodeErrorRate"`
	MemoryLevel     string  `json:"memoryLevel,omitempty"`
}
