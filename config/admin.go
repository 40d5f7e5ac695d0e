package config

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
	// mutating calls (flush, drain, closing a connection) and by the reads
	// that reveal individual clients (the connection listing, one
	// connection). "": those calls are accepted from loopback addresses only.
	// Aggregate reads (stats, health, metrics, status, /metrics, probes) never
	// need it.
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

// HealthConfig holds the thresholds of GET /api/websocket/health, judged
// over Metrics.Window, and the readiness rule of /readyz. Health reflects
// the node only: what clients send (bad frames, unknown types, invalid
// filters, rate-limit hits, auth and origin refusals, resets) is counted in
// client_errors_total{reason} and never moves it.
type HealthConfig struct {
	// LatencyDegraded: above it, degraded. 0: 15ms.
	LatencyDegraded time.Duration `yaml:"latency_degraded"`
	// LatencyUnhealthy: above it, unhealthy. 0: 30ms.
	LatencyUnhealthy time.Duration `yaml:"latency_unhealthy"`
	// ErrorRateDegraded (a fraction, 0.01 = 1 %) of server-side failures:
	// socket writes that failed for the server's own reasons (not a client
	// reset or a client that stopped reading), internal errors and messages
	// the dispatcher dropped, over pipeline messages forwarded + those
	// failures. Above it, degraded. 0: 0.01.
	ErrorRateDegraded float64 `yaml:"error_rate_degraded"`
	// ErrorRateUnhealthy: the same rate; above it, unhealthy. 0: 0.05.
	ErrorRateUnhealthy float64 `yaml:"error_rate_unhealthy"`
	// DecodeErrorRateDegraded (a fraction) of source messages that could not
	// be decoded (rejected / (received + rejected), all sources): above it,
	// degraded. 0: 0.01.
	DecodeErrorRateDegraded float64 `yaml:"decode_error_rate_degraded"`
	// DecodeErrorRateUnhealthy: the same rate; above it, unhealthy. 0: 0.25.
	DecodeErrorRateUnhealthy float64 `yaml:"decode_error_rate_unhealthy"`
	// MinEvents is how many events the window must hold before a rate is
	// judged (forwarded messages + server failures for the error rate,
	// source messages for the decode error rate), so that one failure on an
	// idle node does not flip it. 0: 100.
	MinEvents int `yaml:"min_events"`
	// SourceDownUnhealthyAfter: a source disconnected for longer than this
	// turns health from "degraded" to "unhealthy" (HTTP 503 on
	// /api/websocket/health). 0: 60s.
	SourceDownUnhealthyAfter time.Duration `yaml:"source_down_unhealthy_after"`
	// ReadyRequiresSource: /readyz answers 503 while no source is connected
	// (a node with sources configured but none up has nothing to serve).
	// Otherwise readiness is only: accepting (no drain, no shutdown) and
	// memory below critical. nil (absent): true.
	ReadyRequiresSource *bool `yaml:"ready_requires_source"`
}

// MetricsConfig configures the sliding window of rates and windowed latency.
type MetricsConfig struct {
	// Window is the span of messages/s, bytes/s, the latency percentiles of
	// /api/websocket/metrics and the health inputs; it is sampled every
	// Window/10. 0: 10s.
	Window time.Duration `yaml:"window"`
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
	if h.DecodeErrorRateDegraded > h.DecodeErrorRateUnhealthy || h.DecodeErrorRateUnhealthy > 1 {
		errs = append(errs, fmt.Errorf("health decode error rates: want 0 < decode_error_rate_degraded (%g) <= decode_error_rate_unhealthy (%g) <= 1", h.DecodeErrorRateDegraded, h.DecodeErrorRateUnhealthy))
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
