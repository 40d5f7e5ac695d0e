package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/config"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
)

// TestHealthThresholdDefaults pins the defaults taken from the seed's alert
// rules: latency > 15 ms degraded, > 30 ms unhealthy; error rate > 1 %
// degraded, > 5 % unhealthy; memory elevated degraded, critical unhealthy;
// a source down degraded.
func TestHealthThresholdDefaults(t *testing.T) {
	var cfg config.Config
	cfg.ApplyDefaults()
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	tests := []struct {
		name string
		in   observe.HealthInputs
		want string
	}{
		{"idle", observe.HealthInputs{}, "healthy"},
		{"latency 15ms", observe.HealthInputs{AvgLatency: ms(15)}, "healthy"},
		{"latency 15.1ms", observe.HealthInputs{AvgLatency: ms(15.1)}, "degraded"},
		{"latency 30ms", observe.HealthInputs{AvgLatency: ms(30)}, "degraded"},
		{"latency 30.1ms", observe.HealthInputs{AvgLatency: ms(30.1)}, "unhealthy"},
		{"errors 1%", observe.HealthInputs{ErrorRate: 0.01, Events: 1000}, "healthy"},
		{"errors 1.1%", observe.HealthInputs{ErrorRate: 0.011, Events: 1000}, "degraded"},
		{"errors 5.1%", observe.HealthInputs{ErrorRate: 0.051, Events: 1000}, "unhealthy"},
		{"errors 50% of 99 events", observe.HealthInputs{ErrorRate: 0.5, Events: 99}, "healthy"},
		{"errors 50% of 100 events", observe.HealthInputs{ErrorRate: 0.5, Events: 100}, "unhealthy"},
		{"decode errors 1%", observe.HealthInputs{DecodeErrorRate: 0.01, DecodeEvents: 1000}, "healthy"},
		{"decode errors 1.1%", observe.HealthInputs{DecodeErrorRate: 0.011, DecodeEvents: 1000}, "degraded"},
		{"decode errors 25%", observe.HealthInputs{DecodeErrorRate: 0.25, DecodeEvents: 1000}, "degraded"},
		{"decode errors 25.1%", observe.HealthInputs{DecodeErrorRate: 0.251, DecodeEvents: 1000}, "unhealthy"},
		{"decode errors 50% of 99 messages", observe.HealthInputs{DecodeErrorRate: 0.5, DecodeEvents: 99}, "healthy"},
		{"decode events do not judge the error rate", observe.HealthInputs{ErrorRate: 0.5, DecodeEvents: 1000}, "healthy"},
		{"memory normal", observe.HealthInputs{MemoryLevel: "normal"}, "healthy"},
		{"memory elevated", observe.HealthInputs{MemoryLevel: "elevated"}, "degraded"},
		{"memory critical", observe.HealthInputs{MemoryLevel: "critical"}, "unhealthy"},
		{"source down", observe.HealthInputs{SourcesDown: []string{"redis"}}, "degraded"},
		{"draining", observe.HealthInputs{Draining: true}, "degraded"},
		{"worst wins", observe.HealthInputs{SourcesDown: []string{"redis"}, MemoryLevel: "critical", AvgLatency: ms(20)}, "unhealthy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reasons := observe.EvaluateHealth(cfg.Health, tt.in)
			if got != tt.want {
				t.Fatalf("status %s, want %s (reasons %v)", got, tt.want, reasons)
			}
			if (got == "healthy") != (len(reasons) == 0) {
				t.Fatalf("status %s with reasons %v", got, reasons)
			}
		})
	}
}

func TestAdminConfigDefaultsEnvAndErrors(t *testing.T) {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	on := true
	want := config.Config{}
	want.Admin.DrainWindow = 30 * time.Second
	want.Health = config.HealthConfig{LatencyDegraded: 15 * time.Millisecond, LatencyUnhealthy: 30 * time.Millisecond,
		ErrorRateDegraded: 0.01, ErrorRateUnhealthy: 0.05, DecodeErrorRateDegraded: 0.01, DecodeErrorRateUnhealthy: 0.25,
		MinEvents: 100, SourceDownUnhealthyAfter: time.Minute, ReadyRequiresSource: &on}
	want.Metrics.Window = 10 * time.Second
	if cfg.Admin.UI == nil || !*cfg.Admin.UI {
		t.Fatalf("admin.ui defaults to %v, want true", cfg.Admin.UI)
	}
	cfg.Admin.UI = nil
	if cfg.Admin != want.Admin || !reflect.DeepEqual(cfg.Health, want.Health) || cfg.Metrics != want.Metrics {
		t.Fatalf("defaults: %+v %+v %+v", cfg.Admin, cfg.Health, cfg.Metrics)
	}
	shipped, err := config.Load("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if shipped.Admin.UI == nil || !*shipped.Admin.UI {
		t.Fatalf("config.yaml: admin.ui %v, want true", shipped.Admin.UI)
	}
	shipped.Admin.UI = nil
	if shipped.Admin != want.Admin || !reflect.DeepEqual(shipped.Health, want.Health) || shipped.Metrics != want.Metrics {
		t.Fatalf("config.yaml disagrees with the defaults: %+v %+v %+v", shipped.Admin, shipped.Health, shipped.Metrics)
	}

	tests := []struct{ name, yaml, want string }{
		{"latency thresholds inverted", "health: {latency_degraded: 50ms, latency_unhealthy: 20ms}\n", "latency_degraded"},
		{"error rates inverted", "health: {error_rate_degraded: 0.2, error_rate_unhealthy: 0.1}\n", "error_rate"},
		{"error rate above 1", "health: {error_rate_unhealthy: 2}\n", "error_rate"},
		{"decode error rates inverted", "health: {decode_error_rate_degraded: 0.5, decode_error_rate_unhealthy: 0.3}\n", "decode_error_rate"},
		{"decode error rate above 1", "health: {decode_error_rate_unhealthy: 1.5}\n", "decode_error_rate"},
		{"window too short", "metrics: {window: 10ms}\n", "metrics.window"},
		{"token with space", "admin: {token: \"a b\"}\n", "admin.token"},
		{"admin listen equals listen", "listen: \":9000\"\nadmin: {listen: \":9000\"}\n", "admin.listen"},
		{"unknown admin key", "admin: {tokn: x}\n", "tokn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestAdminConfigFromEnv(t *testing.T) {
	t.Setenv("WSPROXY_ADMIN_TOKEN", "abc")
	t.Setenv("WSPROXY_ADMIN_LISTEN", "127.0.0.1:9100")
	t.Setenv("WSPROXY_HEALTH_ERROR_RATE_DEGRADED", "0.02")
	t.Setenv("WSPROXY_METRICS_WINDOW", "1m")
	t.Setenv("WSPROXY_HEALTH_READY_REQUIRES_SOURCE", "false")
	t.Setenv("WSPROXY_HEALTH_DECODE_ERROR_RATE_UNHEALTHY", "0.5")
	t.Setenv("WSPROXY_LIMITS_MAX_BAD_FRAMES_PER_MINUTE", "120")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.Health.ReadyRequiresSource || cfg.Health.DecodeErrorRateUnhealthy != 0.5 || cfg.Limits.MaxBadFramesPerMinute != 120 {
		t.Fatalf("env not applied: %+v %+v", cfg.Health, cfg.Limits)
	}
	if cfg.Admin.Token != "abc" || cfg.Admin.Listen != "127.0.0.1:9100" || cfg.Health.ErrorRateDegraded != 0.02 || cfg.Metrics.Window != time.Minute {
		t.Fatalf("env not applied: %+v %+v", cfg.Admin, cfg.Health)
	}

}

// TestShutdownDuringDrain: a long drain does not hold up Shutdown, which
// closes the remaining clients itself.
func TestShutdownDuringDrain(t *testing.T) {
	h := start(t, nil)
	cs := []*wstest.Client{h.dial(t), h.dial(t), h.dial(t)}
	st := h.srv.Drain(time.Hour)
	if !st.Draining || st.Connections != 3 || !h.srv.Draining() || h.srv.Accepting() {
		t.Fatalf("drain = %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown during drain: %v", err)
	}
	for _, c := range cs {
		if cl, _ := c.WaitClose(t, wait); cl.Code != websocket.CloseGoingAway {
			t.Fatalf("close %+v", cl)
		}
	}
}
