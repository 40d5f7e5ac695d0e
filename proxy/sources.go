package proxy

import (
	"fmt"

	"wsproxy/config"
	"wsproxy/dataflow"
)

// BuiltSources are the sources a SourcesConfig asks for. Ingest is also in
// All; it is non-nil when enabled, and its Handler must be mounted at
// IngestPath by whoever owns the HTTP server.
type BuiltSources struct {
	All    []dataflow.Source
	Ingest *dataflow.Ingest
}

// IngestPath is where the HTTP ingest endpoint is served.
const IngestPath = "/api/dataflow/ingest"

// BuildSources constructs every enabled source of cfg, in a fixed order
// (demo, redis, redis_sharded, streams, nats, jetstream, ingest). It is shared by every program that feeds
// from the pipeline, so that they all read the same configuration keys.
func BuildSources(cfg config.SourcesConfig) (BuiltSources, error) {
	var b BuiltSources
	if cfg.Demo.Enabled {
		b.All = append(b.All, dataflow.NewDemo(cfg.Demo))
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
