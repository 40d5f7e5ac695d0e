package dataflow

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/redis/go-redis/v9"
)

// StreamConfig configures the Redis Streams source.
type StreamConfig struct {
	// Enabled turns the source on. Zero value: off.
	Enabled bool `yaml:"enabled"`
	// Addr of the Redis server (host:port). Default 127.0.0.1:6379.
	Addr string `yaml:"addr"`
	// Password for AUTH. "": none.
	Password string `yaml:"password"`
	// DB is the logical database holding the streams. 0: database 0.
	DB int `yaml:"db"`
	// Keys are the stream keys read (XREAD); each entry's field "data"
	// holds one MarketData JSON. Default ["market-data"].
	Keys []string `yaml:"keys"`
	// Start is where reading begins when the proxy starts: "$" only entries
	// added from now on, "0" everything the streams hold, or an explicit
	// entry ID. After that the source always resumes from the last ID it
	// saw, across reconnects and Redis restarts. Default "$".
	Start string `yaml:"start"`
	// Block is how long one XREAD waits for new entries. Default 2s.
	Block time.Duration `yaml:"block"`
	// Count is the most entries one XREAD returns. Default 512.
	Count int64 `yaml:"count"`
	// BackoffMin is the first reconnect delay. Default 100ms.
	BackoffMin time.Duration `yaml:"backoff_min"`
	// BackoffMax caps the reconnect delay. Default 10s.
	BackoffMax time.Duration `yaml:"backoff_max"`
}

var streamID = regexp.MustCompile(`^[0-9]+(-[0-9]+)?$`)

// RedisStreams is the Redis Streams source. It remembers the last entry ID
// of every stream, so that after a network cut or a Redis restart (with
// persistence) it continues exactly where it stopped: no gap, no duplicate.
// Stats, Name and LastIDs are safe for concurrent use; Run is called once.
type RedisStreams struct {
	cfg StreamConfig
	c   counters

	ids chan map[string]string // one-slot mailbox holding the last IDs
}

var _ Source = (*RedisStreams)(nil)

// NewRedisStreams returns the source; cfg comes with its defaults applied
// (config.ApplyDefaults).
func NewRedisStreams(cfg StreamConfig) (*RedisStreams, error) {
	if err := checkAddr("sources.streams.addr", cfg.Addr); err != nil {
		return nil, err
	}
	if cfg.Start != "$" && !streamID.MatchString(cfg.Start) {
		return nil, fmt.Errorf("%w: sources.streams.start %q: want \"$\", \"0\" or an entry ID", ErrConfig, cfg.Start)
	}
	if len(cfg.Keys) == 0 {
		return nil, fmt.Errorf("%w: sources.streams.keys: none", ErrConfig)
	}
	for _, k := range cfg.Keys {
		if k == "" {
			return nil, fmt.Errorf("%w: sources.streams.keys: empty key", ErrConfig)
		}
	}
	if err := checkPositive(setting{"sources.streams.block", int64(cfg.Block)}, setting{"sources.streams.count", cfg.Count},
		setting{"sources.streams.backoff_min", int64(cfg.BackoffMin)}, setting{"sources.streams.backoff_max", int64(cfg.BackoffMax)}); err != nil {
		return nil, err
	}
	s := &RedisStreams{cfg: cfg, ids: make(chan map[string]string, 1)}
	s.c.name, s.c.typ = "redis-streams", "redis-streams"
	s.ids <- map[string]string{}
	return s, nil
}

// Name implements Source.
func (s *RedisStreams) Name() string { return s.c.name }

// Stats implements Source.
func (s *RedisStreams) Stats() SourceStatus { return s.c.status() }

// LastIDs returns the last entry ID seen per stream key (for operators and
// tests).
func (s *RedisStreams) LastIDs() map[string]string {
	m := <-s.ids
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	s.ids <- m
	return out
}

func (s *RedisStreams) setID(key, id string) {
	m := <-s.ids
	m[key] = id
	s.ids <- m
}

// Run implements Source.
func (s *RedisStreams) Run(ctx context.Context, sink Sink) error {
	rdb := redis.NewClient(&redis.Options{
		Addr: s.cfg.Addr, Password: s.cfg.Password, DB: s.cfg.DB,
		MaxRetries: -1, PoolSize: 2, DialTimeout: 5 * time.Second,
	})
	defer rdb.Close()
	stop := context.AfterFunc(ctx, func() { _ = rdb.Close() }) // unblock a pending XREAD
	defer stop()
	defer s.c.setConnected(false)

	last := make([]string, len(s.cfg.Keys))
	resolved := s.cfg.Start != "$"
	for i := range last {
		last[i] = s.cfg.Start
	}
	bo := Backoff{Min: s.cfg.BackoffMin, Max: s.cfg.BackoffMax}
	args := make([]string, 2*len(s.cfg.Keys))
	for ctx.Err() == nil {
		if !resolved {
			// "$" must become a concrete ID before the first read: were it
			// sent again after a reconnect, entries added meanwhile would
			// be skipped.
			if err := s.resolveStart(ctx, rdb, last); err != nil {
				if !s.failed(ctx, err, &bo) {
					return nil
				}
				continue
			}
			resolved = true
		}
		copy(args, s.cfg.Keys)
		copy(args[len(s.cfg.Keys):], last)
		res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: args, Count: s.cfg.Count, Block: s.cfg.Block}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			if !s.failed(ctx, fmt.Errorf("redis streams: xread: %w", err), &bo) {
				return nil
			}
			continue
		}
		s.c.setConnected(true)
		bo.Reset()
		for _, st := range res {
			i := s.keyIndex(st.Stream)
			if i < 0 {
				continue
			}
			for _, e := range st.Messages {
				s.handle(sink, st.Stream, e)
				last[i] = e.ID
			}
			if n := len(st.Messages); n > 0 {
				s.setID(st.Stream, st.Messages[n-1].ID)
			}
		}
	}
	return nil
}

// failed records err and waits out the backoff; false when ctx ended.
func (s *RedisStreams) failed(ctx context.Context, err error, bo *Backoff) bool {
	if ctx.Err() != nil {
		return false
	}
	s.c.setConnected(false)
	s.c.fail(err)
	return sleepCtx(ctx, bo.Next())
}

func (s *RedisStreams) resolveStart(ctx context.Context, rdb *redis.Client, last []string) error {
	for i, k := range s.cfg.Keys {
		if last[i] != "$" {
			continue
		}
		msgs, err := rdb.XRevRangeN(ctx, k, "+", "-", 1).Result()
		if err != nil {
			return fmt.Errorf("redis streams: resolve start of %s: %w", k, err)
		}
		last[i] = "0-0"
		if len(msgs) > 0 {
			last[i] = msgs[0].ID
		}
		s.setID(k, last[i])
	}
	return nil
}

func (s *RedisStreams) keyIndex(key string) int {
	for i, k := range s.cfg.Keys {
		if k == key {
			return i
		}
	}
	return -1
}

func (s *RedisStreams) handle(sink Sink, stream string, e redis.XMessage) {
	raw, ok := e.Values["data"]
	if !ok {
		s.c.reject(fmt.Errorf("stream %s entry %s: %w: no field \"data\"", stream, e.ID, ErrInvalid))
		return
	}
	str, ok := raw.(string)
	if !ok {
		s.c.reject(fmt.Errorf("stream %s entry %s: %w: field \"data\" is not a string", stream, e.ID, ErrInvalid))
		return
	}
	md, err := Decode([]byte(str))
	if err != nil {
		s.c.reject(fmt.Errorf("stream %s entry %s: %w", stream, e.ID, err))
		return
	}
	s.c.deliver(sink, &md)
}
