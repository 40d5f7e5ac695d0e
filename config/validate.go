package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// Validate checks values and combinations after defaults. The error names
// every key at fault.
func (c *Config) Validate() error {
	var errs []error
	if c.ShutdownDrainShare > 0.9 {
		errs = append(errs, fmt.Errorf("shutdown_drain_share %v: want at most 0.9 (the close frames need the rest of shutdown_timeout)", c.ShutdownDrainShare))
	}
	if c.ConnectionTimeout <= c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("connection_timeout (%s) must exceed heartbeat_interval (%s)", c.ConnectionTimeout, c.HeartbeatInterval))
	}
	if c.Batch.FlushInterval < 0 {
		errs = append(errs, errors.New("batch.flush_interval must be >= 0"))
	}
	if c.Queue.MaxBytes < 1024 {
		errs = append(errs, errors.New("queue.max_bytes must be at least 1024"))
	}
	if err := c.Sources.RedisSharded.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, t := range c.LatestWinsTypes {
		if strings.TrimSpace(strings.TrimSuffix(t, "*")) == "" && t != "*" {
			errs = append(errs, fmt.Errorf("latest_wins_types: empty entry %q", t))
		}
	}
	switch c.Log.Format {
	case "json", "pretty":
	default:
		errs = append(errs, fmt.Errorf("log.format %q: want json or pretty", c.Log.Format))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q: want debug, info, warn or error", c.Log.Level))
	}
	errs = append(errs, c.validateCluster()...)
	errs = append(errs, c.validateHardening()...)
	errs = append(errs, c.validateAdmin()...)
	errs = append(errs, c.validatePressure()...)
	errs = append(errs, c.validateUpstream()...)
	if err := c.Compression.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("compression: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

func (c *Config) validateCluster() []error {
	cl := c.Cluster
	if !cl.Enabled {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(cl.RedisAddr); err != nil {
		errs = append(errs, fmt.Errorf("cluster.redis_addr %q: %w", cl.RedisAddr, err))
	}
	if cl.TTL <= cl.Heartbeat {
		errs = append(errs, fmt.Errorf("cluster.ttl (%s) must exceed cluster.heartbeat (%s)", cl.TTL, cl.Heartbeat))
	}
	return errs
}
