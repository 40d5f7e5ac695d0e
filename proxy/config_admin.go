package proxy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// AdminConfig configures the operator API (package admin).
type AdminConfig struct {
	// Listen, when set, serves the admin API, /metrics, /livez and /readyz
	// on this separate address only; the main listener then keeps /ws and
	// the legacy /api/websocket/status. "": everything on Listen.
	Listen string `yaml:"listen"`
	// Token, when set, is required as "Authorization: Bearer <token>" by the
	// mutating calls (flush, drain, closing a connection). "": those calls
	// are accepted from loopback addresses only.
	Token string `yaml:"token"`
	// DrainWindow is how long POST /api/websocket/drain spreads the closing
	// of clients over when the request names no window. 0: 30s.
	DrainWindow time.Duration `yaml:"drain_window"`
	// UI serves the operator dashboard page at /admin/ (on Listen, or on
	// admin.listen when set). nil (absent): true.
	UI *bool `yaml:"ui"`
}

// UIEnabled reports whether the /admin/ page is served.
func (a AdminConfig) UIEnabled() bool { return a.UI == nil || *a.UI }

// HealthConfig holds the thresholds of GET /api/websocket/health. Latency is
// the average ingest-to-socket-write time and the error rate is errors /
// (messages + errors), both over Metrics.Window.
type HealthConfig struct {
	// LatencyDegraded: above it, degraded. 0: 15ms.
	LatencyDegraded time.Duration `yaml:"latency_degraded"`
	// LatencyUnhealthy: above it, unhealthy. 0: 30ms.
	LatencyUnhealthy time.Duration `yaml:"latency_unhealthy"`
	// ErrorRateDegraded (a fraction, 0.01 = 1 %): above it, degraded. 0: 0.01.
	ErrorRateDegraded float64 `yaml:"error_rate_degraded"`
	// ErrorRateUnhealthy: above it, unhealthy. 0: 0.05.
	ErrorRateUnhealthy float64 `yaml:"error_rate_unhealthy"`
	// MinEvents is how many messages + errors the window must hold before
	// the error rate is judged, so that one bad client message on an idle
	// node does not flip it. 0: 100.
	MinEvents int `yaml:"min_events"`
	// SourceDownUnhealthyAfter: a source disconnected for longer than this
	// turns health from "degraded" to "unhealthy" (HTTP 503 on
	// /api/websocket/health). 0: 60s.
	SourceDownUnhealthyAfter time.Duration `yaml:"source_down_unhealthy_after"`
}

// MetricsConfig configures the sliding window of rates and windowed latency.
type MetricsConfig struct {
	// Window is the span of messages/s, bytes/s, the latency percentiles of
	// /api/websocket/metrics and the health inputs; it is sampled every
	// Window/10. 0: 10s.
	Window time.Duration `yaml:"window"`
}

func (c *Config) applyAdminDefaults() {
	defDur(&c.Admin.DrainWindow, 30*time.Second)
	if c.Admin.UI == nil {
		on := true
		c.Admin.UI = &on
	}
	defDur(&c.Health.LatencyDegraded, 15*time.Millisecond)
	defDur(&c.Health.SourceDownUnhealthyAfter, 60*time.Second)
	defDur(&c.Health.LatencyUnhealthy, 30*time.Millisecond)
	if c.Health.ErrorRateDegraded <= 0 {
		c.Health.ErrorRateDegraded = 0.01
	}
	if c.Health.ErrorRateUnhealthy <= 0 {
		c.Health.ErrorRateUnhealthy = 0.05
	}
	defInt(&c.Health.MinEvents, 100)
	defDur(&c.Metrics.Window, 10*time.Second)
}

func (c *Config) validateAdmin() []error {
	var errs []error
	h := c.Health
	if h.LatencyDegraded > h.LatencyUnhealthy {
		errs = append(errs, fmt.Errorf("health.latency_degraded (%s) must not exceed health.latency_unhealthy (%s)", h.LatencyDegraded, h.LatencyUnhealthy))
	}
	if h.ErrorRateDegraded > h.ErrorRateUnhealthy || h.ErrorRateUnhealthy > 1 {
		errs = append(errs, fmt.Errorf("health error rates: want 0 < error_rate_degraded (%g) <= error_rate_unhealthy (%g) <= 1", h.ErrorRateDegraded, h.ErrorRateUnhealthy))
	}
	if c.Metrics.Window < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("metrics.window (%s) must be at least 100ms", c.Metrics.Window))
	}
	if strings.ContainsFunc(c.Admin.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		errs = append(errs, errors.New("admin.token must not contain spaces or control characters"))
	}
	if c.Admin.Listen != "" && c.Admin.Listen == c.Listen {
		errs = append(errs, fmt.Errorf("admin.listen (%s) must differ from listen", c.Admin.Listen))
	}
	return errs
}
