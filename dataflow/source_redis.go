package dataflow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrConfig is wrapped by every source configuration error.
var ErrConfig = errors.New("dataflow: invalid source configuration")

// RedisConfig configures the Redis Pub/Sub source.
type RedisConfig struct {
	// Enabled turns the source on. Zero value: off.
	Enabled bool `yaml:"enabled"`
	// Addr of the Redis server (host:port). Default 127.0.0.1:6379.
	Addr string `yaml:"addr"`
	// Password for AUTH. "": none.
	Password string `yaml:"password"`
	// DB is the logical database (Pub/Sub ignores it; kept for one
	// connection setup shared with the other Redis users). 0: database 0.
	DB int `yaml:"db"`
	// Pattern is PSUBSCRIBEd; the collector publishes to
	// market-data-<type>-<exchange>. Default "market-data-*".
	Pattern string `yaml:"pattern"`
	// BackoffMin is the first reconnect delay. Default 100ms.
	BackoffMin time.Duration `yaml:"backoff_min"`
	// BackoffMax caps the reconnect delay. Default 10s.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// HealthCheck: a subscription silent for this long is pinged, and
	// reconnected when the ping fails. Default 15s.
	HealthCheck time.Duration `yaml:"health_check"`
}

// setting is a value a source cannot run with unless it is positive.
type setting struct {
	key string // its yaml path
	v   int64
}

// checkPositive fails with ErrConfig naming the first setting that is not
// positive. The sources apply no defaults: config.ApplyDefaults sets every
// one of them.
func checkPositive(settings ...setting) error {
	for _, s := range settings {
		if s.v <= 0 {
			return fmt.Errorf("%w: %s %d must be positive", ErrConfig, s.key, s.v)
		}
	}
	return nil
}

func checkAddr(field, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrConfig, field, addr, err)
	}
	return nil
}

// RedisPubSub is the Redis Pub/Sub source: it PSUBSCRIBEs a pattern and
// decodes each message body as one MarketData. Pub/Sub has no history: what
// is published while the connection is down is lost (use the Streams source
// when gaps matter). Stats and Name are safe for concurrent use; Run is
// called once.
type RedisPubSub struct {
	cfg RedisConfig
	c   counters
}

var _ Source = (*RedisPubSub)(nil)

// NewRedisPubSub returns the source; cfg comes with its defaults applied
// (config.ApplyDefaults).
func NewRedisPubSub(cfg RedisConfig) (*RedisPubSub, error) {
	if err := checkAddr("sources.redis.addr", cfg.Addr); err != nil {
		return nil, err
	}
	if cfg.Pattern == "" {
		return nil, fmt.Errorf("%w: sources.redis.pattern is empty", ErrConfig)
	}
	if err := checkPositive(setting{"sources.redis.health_check", int64(cfg.HealthCheck)},
		setting{"sources.redis.backoff_min", int64(cfg.BackoffMin)}, setting{"sources.redis.backoff_max", int64(cfg.BackoffMax)}); err != nil {
		return nil, err
	}
	r := &RedisPubSub{cfg: cfg}
	r.c.name, r.c.typ = "redis-pubsub", "redis"
	return r, nil
}

// Name implements Source.
func (r *RedisPubSub) Name() string { return r.c.name }

// Stats implements Source.
func (r *RedisPubSub) Stats() SourceStatus { return r.c.status() }

// Run implements Source: subscribe, read, and on any failure reconnect
// after a capped, jittered backoff until ctx ends.
func (r *RedisPubSub) Run(ctx context.Context, sink Sink) error {
	rdb := redis.NewClient(&redis.Options{
		Addr: r.cfg.Addr, Password: r.cfg.Password, DB: r.cfg.DB,
		MaxRetries: -1, PoolSize: 2, DialTimeout: 5 * time.Second,
	})
	defer rdb.Close()
	defer r.c.setConnected(false)
	bo := Backoff{Min: r.cfg.BackoffMin, Max: r.cfg.BackoffMax}
	for ctx.Err() == nil {
		err := r.session(ctx, rdb, sink, &bo)
		if ctx.Err() != nil {
			return nil
		}
		r.c.setConnected(false)
		r.c.fail(err)
		if !sleepCtx(ctx, bo.Next()) {
			return nil
		}
	}
	return nil
}

// session runs one subscription until it fails; it always returns an error
// (or ctx's).
func (r *RedisPubSub) session(ctx context.Context, rdb *redis.Client, sink Sink, bo *Backoff) error {
	ps := rdb.PSubscribe(ctx, r.cfg.Pattern)
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer ps.Close()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, r.cfg.HealthCheck)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				// Silent for a while: prove the connection is alive.
				if perr := ps.Ping(ctx); perr != nil {
					return fmt.Errorf("redis pubsub: ping: %w", perr)
				}
				pinged = true
				continue
			}
			return fmt.Errorf("redis pubsub: %w", err)
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "psubscribe" {
				r.c.setConnected(true)
				bo.Reset()
			}
		case *redis.Message:
			md, err := DecodeWith([]byte(m.Payload), channelExchange(m.Channel))
			if err != nil {
				r.c.reject(fmt.Errorf("channel %s: %w", m.Channel, err))
				continue
			}
			r.c.deliver(sink, &md)
		}
	}
}

// channelExchange is the <exchange> of a channel named
// [prefix]market-data-<type>-<exchange>, the default exchange of a message
// on it that names none; "" for other channel names.
func channelExchange(channel string) string {
	_, rest, ok := strings.Cut(channel, "market-data-")
	if !ok {
		return ""
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return ""
	}
	return rest[i+1:]
}
