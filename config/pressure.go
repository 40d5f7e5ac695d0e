package proxy

import (
	"errors"
	"fmt"
	"time"

	"wsproxy/pool"
)

// SlowConsumerConfig is the policy for clients that cannot keep up.
type SlowConsumerConfig struct {
	// MaxLag closes, with 1008 "Slow consumer", a connection whose queue has
	// stayed saturated (full, and not drained since) this long. 0: 10s.
	MaxLag time.Duration `yaml:"max_lag"`
}

// MemoryConfig configures the memory monitor (pool.MemoryConfig): usage is
// the Go heap plus the bytes queued for all connections.
type MemoryConfig struct {
	// Threshold in bytes. 0: 536870912 (512 MiB). Negative: no monitor.
	Threshold int64 `yaml:"threshold"`
	// SampleInterval between samples. 0: 100ms.
	SampleInterval time.Duration `yaml:"sample_interval"`
	// ElevatedRatio of threshold enters elevated (flush, shrink queues,
	// conflate). 0: 0.8.
	ElevatedRatio float64 `yaml:"elevated_ratio"`
	// CriticalRatio of threshold enters critical (shed saturated queues,
	// refuse connections, unhealthy). 0: 1.0.
	CriticalRatio float64 `yaml:"critical_ratio"`
	// RecoverRatio of threshold returns to normal. 0: 0.7.
	RecoverRatio float64 `yaml:"recover_ratio"`
	// RecoverAfter is how long usage stays below a level's exit ratio before
	// the level is lowered. 0: 1s.
	RecoverAfter time.Duration `yaml:"recover_after"`
}

func (c *Config) applyPressureDefaults() {
	defInt(&c.Batch.MaxBytes, pool.DefaultBatchMaxBytes)
	defDur(&c.SlowConsumer.MaxLag, pool.DefaultSlowConsumerMaxLag)
	m := &c.Memory
	if m.Threshold == 0 {
		m.Threshold = pool.DefaultMemoryThreshold
	}
	defDur(&m.SampleInterval, pool.DefaultMemorySampleInterval)
	defFloat(&m.ElevatedRatio, pool.DefaultMemoryElevatedRatio)
	defFloat(&m.CriticalRatio, pool.DefaultMemoryCriticalRatio)
	defFloat(&m.RecoverRatio, pool.DefaultMemoryRecoverRatio)
	defDur(&m.RecoverAfter, pool.DefaultMemoryRecoverAfter)
}

func (c *Config) validatePressure() []error {
	var errs []error
	if c.Batch.MaxBytes < 1024 {
		errs = append(errs, errors.New("batch.max_bytes must be at least 1024"))
	}
	if c.SlowConsumer.MaxLag < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("slow_consumer.max_lag (%s) must be at least 10ms", c.SlowConsumer.MaxLag))
	}
	if err := c.Memory.pool().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
	}
	return errs
}

func (m MemoryConfig) pool() pool.MemoryConfig {
	return pool.MemoryConfig{
		Threshold:      m.Threshold,
		SampleInterval: m.SampleInterval,
		ElevatedRatio:  m.ElevatedRatio,
		CriticalRatio:  m.CriticalRatio,
		RecoverRatio:   m.RecoverRatio,
		RecoverAfter:   m.RecoverAfter,
	}
}

func defFloat(v *float64, d float64) {
	if *v <= 0 {
		*v = d
	}
}
