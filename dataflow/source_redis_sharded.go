package dataflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisShardedConfig configures the Redis Cluster sharded Pub/Sub source
// (SSUBSCRIBE, Redis 7+). Sharded Pub/Sub spreads channels over the cluster's
// shards by hash slot, so that the publish rate scales with the number of
// shards instead of every message being broadcast to every node as with
// classic Pub/Sub. Collectors publish with SPUBLISH to the same channel names.
//
// Sharded Pub/Sub has no pattern form (there is no PSSUBSCRIBE): the channels
// must be listed explicitly, e.g. market-data-trade-binance,
// market-data-ticker-binance, ... (the collector's market-data-<type>-<exchange>
// names).
type RedisShardedConfig struct {
	// Enabled turns the source on. Zero value: off.
	Enabled bool `yaml:"enabled"`
	// Addrs are seed nodes of the cluster ("host:port"). Required when
	// enabled.
	Addrs []string `yaml:"addrs"`
	// Channels to SSUBSCRIBE, by exact name. Required when enabled.
	Channels []string `yaml:"channels"`
	// Username and Password for AUTH. Empty: none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// MaxBackoff caps the reconnect delay, which doubles from 100ms.
	// Default 5s.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// ErrShardedConfig reports an unusable RedisShardedConfig.
var ErrShardedConfig = errors.New("dataflow: redis_sharded: invalid config")

// Validate checks an enabled configuration.
func (c *RedisShardedConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	switch {
	case len(c.Addrs) == 0:
		return fmt.Errorf("%w: addrs is empty", ErrShardedConfig)
	case len(c.Channels) == 0:
		return fmt.Errorf("%w: channels is empty (sharded Pub/Sub has no patterns: list the channels)", ErrShardedConfig)
	}
	for _, ch := range c.Channels {
		if strings.ContainsAny(ch, "*?[") {
			return fmt.Errorf("%w: channel %q looks like a pattern; sharded Pub/Sub has none", ErrShardedConfig, ch)
		}
	}
	return nil
}

// RedisSharded reads MarketData from Redis Cluster sharded Pub/Sub. Channels
// are grouped by hash slot, because one SSUBSCRIBE may only name channels of
// one slot; each group has its own subscription connection to the shard that
// owns the slot and reconnects on its own with capped exponential backoff
// (following slot moves, since the cluster client re-resolves the owner).
type RedisSharded struct {
	cfg    RedisShardedConfig
	c      counters
	groups [][]string
	up     atomic.Int32 // groups currently subscribed
}

var _ Source = (*RedisSharded)(nil)

// NewRedisSharded returns the source; cfg must pass Validate and come with
// its defaults applied (config.ApplyDefaults).
func NewRedisSharded(cfg RedisShardedConfig) (*RedisSharded, error) {
	cfg.Enabled = true
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkPositive(setting{"sources.redis_sharded.max_backoff", int64(cfg.MaxBackoff)}); err != nil {
		return nil, err
	}
	s := &RedisSharded{cfg: cfg}
	s.c.name, s.c.typ = "redis-sharded", "redis-sharded"
	bySlot := map[uint16]int{}
	for _, ch := range cfg.Channels {
		slot := KeySlot(ch)
		i, ok := bySlot[slot]
		if !ok {
			i = len(s.groups)
			bySlot[slot] = i
			s.groups = append(s.groups, nil)
		}
		s.groups[i] = append(s.groups[i], ch)
	}
	return s, nil
}

// Name implements Source.
func (s *RedisSharded) Name() string { return s.c.name }

// Stats implements Source.
func (s *RedisSharded) Stats() SourceStatus { return s.c.status() }

// Run implements Source.
func (s *RedisSharded) Run(ctx context.Context, sink Sink) error {
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: s.cfg.Addrs, Username: s.cfg.Username, Password: s.cfg.Password,
	})
	defer client.Close()
	var wg sync.WaitGroup
	for _, chans := range s.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runGroup(ctx, client, chans, sink)
		}()
	}
	wg.Wait()
	s.c.setConnected(false)
	return nil
}

func (s *RedisSharded) runGroup(ctx context.Context, client *redis.ClusterClient, chans []string, sink Sink) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if s.subscribeOnce(ctx, client, chans, sink) {
			backoff = 100 * time.Millisecond
		}
		if ctx.Err() != nil {
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// subscribeOnce holds one subscription until it fails or ctx ends; it reports
// whether the subscription was established.
func (s *RedisSharded) subscribeOnce(ctx context.Context, client *redis.ClusterClient, chans []string, sink Sink) bool {
	ps := client.SSubscribe(ctx)
	defer ps.Close()
	// A blocked Receive does not watch ctx: closing the subscription ends it.
	unwatch := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer unwatch()
	if err := ps.SSubscribe(ctx, chans...); err != nil {
		s.c.fail(fmt.Errorf("ssubscribe: %w", err))
		return false
	}
	subscribed := false
	defer func() {
		if subscribed && s.up.Add(-1) < int32(len(s.groups)) {
			s.c.setConnected(false)
		}
	}()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.c.fail(fmt.Errorf("receive: %w", err))
			}
			return subscribed
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "ssubscribe" && !subscribed && m.Count >= len(chans) {
				subscribed = true
				if s.up.Add(1) == int32(len(s.groups)) {
					s.c.setConnected(true)
				}
			}
		case *redis.Message:
			md, err := Decode([]byte(m.Payload))
			if err != nil {
				s.c.rejected.Add(1)
				continue
			}
			s.c.deliver(sink, &md)
		}
	}
}

// KeySlot returns the Redis Cluster hash slot of key (CRC16/XMODEM modulo
// 16384, hashing only a non-empty {hashtag} when there is one).
func KeySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
