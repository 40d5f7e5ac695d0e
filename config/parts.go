package config

import (
	"wsproxy/pool"
	"wsproxy/subscription"
)

// The packages the server is built from take their part of a defaulted
// Config and apply no defaults of their own. Tests of those packages start
// from Default() and change what they are about.

// PoolConfig is the pool's part of c (after ApplyDefaults). Log is left
// for the caller.
func (c Config) PoolConfig() pool.Config {
	return pool.Config{
		QueueMaxMessages:   c.Queue.MaxMessages,
		QueueMaxBytes:      c.Queue.MaxBytes,
		BatchMaxMessages:   c.Batch.MaxMessages,
		FlushInterval:      c.Batch.FlushInterval,
		InlineWrites:       c.Batch.InlineWrites != nil && *c.Batch.InlineWrites,
		WriteTimeout:       c.WriteTimeout,
		HeartbeatInterval:  c.HeartbeatInterval,
		ConnectionTimeout:  c.ConnectionTimeout,
		CloseGrace:         DefaultCloseGrace,
		BatchMaxBytes:      c.Batch.MaxBytes,
		SlowConsumerMaxLag: c.SlowConsumer.MaxLag,
		Memory:             c.Memory,
		Deflate:            c.Compression,
	}
}

// SubscriptionLimits is the limits section as the index takes it (after
// ApplyDefaults).
func (c Config) SubscriptionLimits() subscription.Limits {
	return subscription.Limits{MaxFilters: c.Limits.MaxFilters, MaxSymbols: c.Limits.MaxSymbols,
		MaxExchanges: c.Limits.MaxExchanges, MaxValueLen: DefaultMaxValueLen}
}
