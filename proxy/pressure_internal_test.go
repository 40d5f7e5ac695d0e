package proxy

import (
	"testing"

	"wsproxy/pool"
)

func TestMemoryHealth(t *testing.T) {
	tests := []struct {
		name     string
		status   string
		pressure pool.Pressure
		want     string
	}{
		{"normal leaves healthy", "healthy", pool.PressureNormal, "healthy"},
		{"normal leaves degraded", "degraded", pool.PressureNormal, "degraded"},
		{"elevated degrades", "healthy", pool.PressureElevated, "degraded"},
		{"elevated keeps degraded", "degraded", pool.PressureElevated, "degraded"},
		{"critical is unhealthy", "healthy", pool.PressureCritical, "unhealthy"},
		{"critical over degraded", "degraded", pool.PressureCritical, "unhealthy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := HealthStatus{Status: tc.status}
			memoryHealth(&h, tc.pressure)
			if h.Status != tc.want {
				t.Fatalf("status %q, want %q", h.Status, tc.want)
			}
		})
	}
}
