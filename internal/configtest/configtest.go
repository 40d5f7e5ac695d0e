// Package configtest gives tests of the packages config feeds (pool,
// subscription, dataflow, dispatch) the configuration's defaults: those
// packages apply none of their own, so a test states what it is about and
// takes the rest from config.Default.
package configtest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// TestQueueMaxMessages is the per-connection queue bound of Pool when over
// sets none: the bound the pool and dispatch tests and benchmarks were
// written against (the configuration's default is config.DefaultQueueMaxMessages).
const TestQueueMaxMessages = 100

// Pool returns config.Default().PoolConfig() with the non-zero fields of
// over (recursively for Memory and Deflate) and a queue bound of
// TestQueueMaxMessages unless over sets one.
func Pool(over pool.Config) pool.Config {
	base := config.Default().PoolConfig()
	base.QueueMaxMessages = TestQueueMaxMessages
	return With(base, over)
}

// Limits returns config.Default().SubscriptionLimits() with the non-zero
// fields of over.
func Limits(over subscription.Limits) subscription.Limits {
	return With(config.Default().SubscriptionLimits(), over)
}

// Sources returns the sources section of config.Default.
func Sources() config.SourcesConfig { return config.Default().Sources }

// Demo returns the default demo source configuration with over's non-zero
// fields.
func Demo(over dataflow.DemoConfig) dataflow.DemoConfig { return With(Sources().Demo, over) }

// Redis is Demo for the Redis Pub/Sub source.
func Redis(over dataflow.RedisConfig) dataflow.RedisConfig { return With(Sources().Redis, over) }

// Streams is Demo for the Redis Streams source.
func Streams(over dataflow.StreamConfig) dataflow.StreamConfig {
	return With(Sources().Streams, over)
}

// RedisSharded is Demo for the sharded Pub/Sub source.
func RedisSharded(over dataflow.RedisShardedConfig) dataflow.RedisShardedConfig {
	return With(Sources().RedisSharded, over)
}

// Ingest is Demo for the HTTP ingest endpoint.
func Ingest(over dataflow.IngestConfig) dataflow.IngestConfig {
	return With(Sources().Ingest, over)
}

// NATS is Demo for the core NATS source.
func NATS(over dataflow.NATSConfig) dataflow.NATSConfig { return With(Sources().NATS, over) }

// JetStream is Demo for the JetStream source.
func JetStream(over dataflow.JetStreamConfig) dataflow.JetStreamConfig {
	return With(Sources().JetStream, over)
}

// With returns base with every non-zero field of over; fields whose type is
// a struct named ...Config are merged field by field the same way.
func With[T any](base, over T) T {
	b := reflect.ValueOf(&base).Elem()
	overlay(b, reflect.ValueOf(over))
	return base
}

var durationType = reflect.TypeOf(time.Duration(0))

func overlay(dst, src reflect.Value) {
	for i := 0; i < src.NumField(); i++ {
		f, d := src.Field(i), dst.Field(i)
		if !d.CanSet() || f.IsZero() {
			continue
		}
		if t := f.Type(); t.Kind() == reflect.Struct && t != durationType && strings.HasSuffix(t.Name(), "Config") {
			overlay(d, f)
			continue
		}
		d.Set(f)
	}
}

// NewPool builds a pool from Pool(over), failing tb if New refuses it.
func NewPool(tb testing.TB, over pool.Config, obs pool.Observer) *pool.Pool {
	tb.Helper()
	p, err := pool.New(Pool(over), obs)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
