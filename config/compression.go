package proxy

import (
	"fmt"
	"time"

	"wsproxy/pool"
)

// CompressionConfig configures permessage-deflate (RFC 7692) on /ws.
type CompressionConfig struct {
	// Enabled accepts permessage-deflate offers. Clients that do not offer
	// it are served exactly as without it. Default false.
	Enabled bool `yaml:"enabled"`
	// Mode is per_message (each message compressed once, no context
	// takeover, the bytes shared by every recipient) or shared_stream
	// (connections with the same subscription share one compressor stream
	// with context takeover). "": per_message.
	Mode string `yaml:"mode"`
	// MinSize: messages shorter than this go uncompressed. 0: 128.
	MinSize int `yaml:"min_size"`
	// Level is the deflate level of shared streams, 1 (fastest) to 9. 0: 2
	// (compress/flate's level 1 only matches within the previous message).
	Level int `yaml:"level"`
	// MessageLevel is the deflate level of standalone (per_message)
	// compressions, 1 to 9. 0: 1 (the cheapest to start per message).
	MessageLevel int `yaml:"message_level"`
	// MaxStreams bounds shared streams (shared_stream); connections beyond
	// it get per_message. 0: 16.
	MaxStreams int `yaml:"max_streams"`
	// ResetEvery starts a fresh stream generation after this many
	// compressed messages; connections join a stream at a generation start.
	// 0: 1000.
	ResetEvery int `yaml:"reset_every"`
	// ResetInterval starts a fresh generation once the current one is this
	// old. 0: 5s.
	ResetInterval time.Duration `yaml:"reset_interval"`
}

func (c *CompressionConfig) applyDefaults() {
	if c.Mode == "" {
		c.Mode = string(pool.DeflatePerMessage)
	}
	defInt(&c.MinSize, pool.DefaultDeflateMinSize)
	if c.Level == 0 {
		c.Level = pool.DefaultDeflateLevel
	}
	if c.MessageLevel == 0 {
		c.MessageLevel = pool.DefaultDeflateMessageLevel
	}
	defInt(&c.MaxStreams, pool.DefaultDeflateMaxStreams)
	defInt(&c.ResetEvery, pool.DefaultDeflateResetEvery)
	defDur(&c.ResetInterval, pool.DefaultDeflateResetInterval)
}

func (c *CompressionConfig) pool() pool.DeflateConfig {
	return pool.DeflateConfig{
		Mode:          pool.DeflateMode(c.Mode),
		MinSize:       c.MinSize,
		MaxStreams:    c.MaxStreams,
		ResetEvery:    c.ResetEvery,
		ResetInterval: c.ResetInterval,
		Level:         c.Level,
		MessageLevel:  c.MessageLevel,
	}
}

func (c *CompressionConfig) validate() []error {
	if err := c.pool().Validate(); err != nil {
		return []error{fmt.Errorf("compression: %w", err)}
	}
	return nil
}
