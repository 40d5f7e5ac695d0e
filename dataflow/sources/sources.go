// Package sources builds the dataflow sources a configuration asks for. It
// is shared by every program that feeds from the pipeline (the server and
// the legacy reference server), so that they all read the same keys.
package sources

import (
	"fmt"

	"wsproxy/config"
	"wsproxy/dataflow"
)

// Built are the sources a SourcesConfig asks for. Ingest is also in All; it
// is non-nil when enabled, and its Handler must be mounted at
// dataflow.IngestPath by whoever owns the HTTP server.
type Built struct {
	All    []dataflow.Source
	Ingest *dataflow.Ingest
}

// Build constructs every enabled source of cfg, in a fixed order (demo,
// redis, redis_sharded, streams, nats, jetstream, ingest). cfg comes from a
// Config whose defaults are applied (config.Load, Config.ApplyDefaults).
func Build(cfg config.SourcesConfig) (Built, error) {
	var b Built
	if cfg.Demo.Enabled {
		d, err := dataflow.NewDemo(cfg.Demo)
		if err != nil {
			return b, fmt.Errorf("config: %w", err)
		}
		b.All = append(b.All, d)
	}
	if cfg.Redis.Enabled {
		r, err := dataflow.NewRedisPubSub(cfg.Redis)
		if err != nil {
			return b, fmt.Errorf("config: %w", err)
		}
		b.All = append(b.All, r)
	}
	if cfg.RedisSharded.Enabled {
		r, err := dataflow.NewRedisSharded(cfg.RedisSharded)
		if err != nil {
			return b, fmt.Errorf("config: %w", err)
		}
		b.All = append(b.All, r)
	}
	if cfg.Streams.Enabled {
		s, err := dataflow.NewRedisStreams(cfg.Streams)
		if err != nil {
			return b, fmt.Errorf("config: %w", err)
		}
		b.All = append(b.All, s)
	}
	if cfg.NATS.Enabled {
		n, err := dataflow.NewNATS(cfg.NATS)
		if err != nil {
			return b, fmt.Errorf("config: %w", err)
		}
		b.All = append(b.All, n)
	}
	if cfg.JetStream.Enabled {
		j, err := dataflow.NewJetStream(cfg.JetStream)
		if err != nil {
			return b, fmt.Errorf("config: %w", err)
		}
		b.All = append(b.All, j)
	}
	if cfg.Ingest.Enabled {
		in, err := dataflow.NewIngest(cfg.Ingest)
		if err != nil {
			return b, fmt.Errorf("config: %w", err)
		}
		b.Ingest = in
		b.All = append(b.All, in)
	}
	return b, nil
}
