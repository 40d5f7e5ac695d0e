package observe

import (
	"fmt"
	"time"

	"wsproxy/config"
)

// Health statuses of PROTOCOL.md's HealthStatus.
const (
	StatusHealthy   = "healthy"
	StatusDegraded  = "degraded"
	StatusUnhealthy = "unhealthy"
)

// Memory levels reported by the memory monitor.
const (
	MemoryNormal   = "normal"
	MemoryElevated = "elevated"
	MemoryCritical = "critical"
)

// HealthInputs are the conditions health is judged on, read over the last
// metrics.window.
type HealthInputs struct {
	// AvgLatency is the average ingest-to-socket-write latency; 0 when
	// nothing was delivered.
	AvgLatency time.Duration
	// ErrorRate is server-side failures / (messages forwarded + those
	// failures); judged only when Events reaches HealthConfig.MinEvents.
	// Client errors are not inputs at all.
	ErrorRate float64
	Events    uint64
	// DecodeErrorRate is rejected / (received + rejected) source messages;
	// judged only when DecodeEvents reaches HealthConfig.MinEvents.
	DecodeErrorRate float64
	DecodeEvents    uint64
	// MemoryLevel is MemoryNormal, MemoryElevated or MemoryCritical.
	MemoryLevel string
	// SourcesDown names the sources that are not connected.
	SourcesDown []string
	// SourcesDownTooLong is set when a source has been down longer than
	// health.source_down_unhealthy_after.
	SourcesDownTooLong bool
	// Draining is set once a drain has started.
	Draining bool
}

// EvaluateHealth returns the status for in under the thresholds of c and
// the reasons for anything but healthy. The worst condition wins.
func EvaluateHealth(c config.HealthConfig, in HealthInputs) (status string, reasons []string) {
	rank := 0
	flag := func(r int, format string, args ...any) {
		rank = max(rank, r)
		reasons = append(reasons, fmt.Sprintf(format, args...))
	}
	const degraded, unhealthy = 1, 2
	switch {
	case in.AvgLatency > c.LatencyUnhealthy:
		flag(unhealthy, "average latency %s above %s", in.AvgLatency.Round(time.Microsecond), c.LatencyUnhealthy)
	case in.AvgLatency > c.LatencyDegraded:
		flag(degraded, "average latency %s above %s", in.AvgLatency.Round(time.Microsecond), c.LatencyDegraded)
	}
	if in.Events >= uint64(c.MinEvents) {
		switch {
		case in.ErrorRate > c.ErrorRateUnhealthy:
			flag(unhealthy, "server error rate %.2f%% above %.2f%%", in.ErrorRate*100, c.ErrorRateUnhealthy*100)
		case in.ErrorRate > c.ErrorRateDegraded:
			flag(degraded, "server error rate %.2f%% above %.2f%%", in.ErrorRate*100, c.ErrorRateDegraded*100)
		}
	}
	if in.DecodeEvents >= uint64(c.MinEvents) {
		switch {
		case in.DecodeErrorRate > c.DecodeErrorRateUnhealthy:
			flag(unhealthy, "source decode error rate %.2f%% above %.2f%%", in.DecodeErrorRate*100, c.DecodeErrorRateUnhealthy*100)
		case in.DecodeErrorRate > c.DecodeErrorRateDegraded:
			flag(degraded, "source decode error rate %.2f%% above %.2f%%", in.DecodeErrorRate*100, c.DecodeErrorRateDegraded*100)
		}
	}
	switch in.MemoryLevel {
	case MemoryCritical:
		flag(unhealthy, "memory level critical")
	case MemoryElevated:
		flag(degraded, "memory level elevated")
	}
	for _, name := range in.SourcesDown {
		flag(degraded, "source %s down", name)
	}
	if in.SourcesDownTooLong {
		flag(unhealthy, "a source down longer than %s", c.SourceDownUnhealthyAfter)
	}
	if in.Draining {
		flag(degraded, "draining")
	}
	return [...]string{StatusHealthy, StatusDegraded, StatusUnhealthy}[rank], reasons
}
