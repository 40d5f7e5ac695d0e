package config

import (
	"errors"
	"fmt"
	"time"
)

// SlowConsumerConfig is the policy for clients that cannot keep up.
type SlowConsumerConfig struct {
	// MaxLag closes, with 1008 "Slow consumer", a connection whose queue has
	// stayed saturated (full, and not drained since) this long. 0: 10s.
	MaxLag time.Duration `yaml:"max_lag"`
}

func (c *Config) validatePressure() []error {
	var errs []error
	if c.Batch.MaxBytes < 1024 {
		errs = append(errs, errors.New("batch.max_bytes must be at least 1024"))
	}
	if c.SlowConsumer.MaxLag < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("slow_consumer.max_lag (%s) must be at least 10ms", c.SlowConsumer.MaxLag))
	}
	if err := c.Memory.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
	}
	return errs
}
