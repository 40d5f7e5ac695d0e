package observe

import (
	"bytes"
	"os"
	"runtime/metrics"
	"strconv"

	"wsproxy/compat"
)

// Metrics is the answer of GET /api/websocket/metrics. Latencies are in
// milliseconds, from a message's ingest to the socket write that carried it,
// over the last metrics.window; rates are over the same window.
type Metrics struct {
	Latency     LatencyMetrics    `json:"latency"`
	Throughput  Throughput        `json:"throughput"`
	Connections int64             `json:"connections"`
	Memory      MemoryMetrics     `json:"memory"`
	Shed        map[string]uint64 `json:"shed"`
	// ClientErrors counts client-caused events since start by reason
	// (Server.ClientErrors); ErrorBudgetCloses the clients closed for too
	// many bad frames.
	ClientErrors      map[string]uint64 `json:"clientErrors"`
	ErrorBudgetCloses uint64            `json:"errorBudgetCloses"`
}

// LatencyMetrics summarises the delivery latency histogram (ms).
type LatencyMetrics struct {
	Avg      float64 `json:"avg"`
	P50      float64 `json:"p50"`
	P95      float64 `json:"p95"`
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
	Count    uint64  `json:"count"`
	WindowMs int64   `json:"windowMs"`
}

// Throughput is delivery over the window: data frames and bytes written to
// sockets per second (once per recipient), pipeline messages dispatched per
// second (once per message), the server-side error rate (failed writes the
// server caused, internal errors and dispatcher drops / (messages + those
// errors)) and the sources' decode error rate (rejected / (received +
// rejected)). Client errors are not in either rate (Metrics.ClientErrors).
type Throughput struct {
	MessagesPerSecond  float64 `json:"messagesPerSecond"`
	BytesPerSecond     float64 `json:"bytesPerSecond"`
	ForwardedPerSecond float64 `json:"forwardedPerSecond"`
	ErrorRate          float64 `json:"errorRate"`
	DecodeErrorRate    float64 `json:"decodeErrorRate"`
	WindowMs           int64   `json:"windowMs"`
}

// MemoryMetrics: live heap and resident set in MB, bytes waiting in
// connection queues, and the memory monitor's level (normal, elevated,
// critical).
type MemoryMetrics struct {
	HeapMB      float64 `json:"heapMB"`
	RSSMB       float64 `json:"rssMB"`
	QueuedBytes int64   `json:"queuedBytes"`
	Level       string  `json:"level"`
}

// ShedDispatchQueue names the messages dropped because the dispatcher's
// queue was full, beside the pool's per-connection reasons.
const ShedDispatchQueue = "dispatch_queue_full"

// HeapBytes returns the live heap in bytes.
func HeapBytes() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindUint64 {
		return sample[0].Value.Uint64()
	}
	return 0
}

// RSSBytes returns the process's resident set in bytes (0 where
// /proc/self/statm is not available).
func RSSBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	n, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return n * uint64(os.Getpagesize())
}

// ProcessMemory fills Node's memoryUsage() keys from runtime/metrics (no
// stop-the-world) and the process's resident set.
func ProcessMemory() compat.LegacyMemory {
	sample := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	metrics.Read(sample)
	var m compat.LegacyMemory
	if sample[0].Value.Kind() == metrics.KindUint64 {
		m.HeapUsed = sample[0].Value.Uint64()
	}
	if sample[1].Value.Kind() == metrics.KindUint64 {
		m.HeapTotal = sample[1].Value.Uint64()
	}
	m.RSS = RSSBytes()
	return m
}
