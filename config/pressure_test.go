package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
)

func TestPressureConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := config.Load("")
		if err != nil {
			t.Fatal(err)
		}
		m := cfg.Memory
		if cfg.SlowConsumer.MaxLag != 10*time.Second || cfg.Batch.MaxBytes != 64<<10 || m.Threshold != 512<<20 ||
			m.SampleInterval != 100*time.Millisecond || m.ElevatedRatio != 0.8 || m.CriticalRatio != 1.0 ||
			m.RecoverRatio != 0.7 || m.RecoverAfter != time.Second {
			t.Fatalf("defaults: %+v %+v batch %d", cfg.SlowConsumer, m, cfg.Batch.MaxBytes)
		}
	})
	t.Run("yaml and env", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		y := "slow_consumer: {max_lag: 3s}\nmemory: {threshold: 67108864, sample_interval: 50ms, elevated_ratio: 0.75}\n"
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("WSPROXY_MEMORY_CRITICAL_RATIO", "0.95")
		t.Setenv("WSPROXY_BATCH_MAX_BYTES", "131072")
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		m := cfg.Memory
		if cfg.SlowConsumer.MaxLag != 3*time.Second || m.Threshold != 64<<20 || m.SampleInterval != 50*time.Millisecond ||
			m.ElevatedRatio != 0.75 || m.CriticalRatio != 0.95 || cfg.Batch.MaxBytes != 128<<10 {
			t.Fatalf("not applied: %+v %+v batch %d", cfg.SlowConsumer, m, cfg.Batch.MaxBytes)
		}
	})
	errs := []struct{ name, yaml, want string }{
		{"ratios out of order", "memory: {elevated_ratio: 0.9, critical_ratio: 0.85}\n", "memory ratios"},
		{"recover above elevated", "memory: {recover_ratio: 0.85}\n", "memory ratios"},
		{"sample interval too short", "memory: {sample_interval: 100us}\n", "sample interval"},
		{"max lag too short", "slow_consumer: {max_lag: 1ms}\n", "slow_consumer.max_lag"},
		{"batch bytes too small", "batch: {max_bytes: 100}\n", "batch.max_bytes"},
		{"threshold not a number", "memory: {threshold: lots}\n", "lots"},
	}
	for _, tc := range errs {
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
