package sources_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/dataflow/sources"
)

func TestBuildSourcesFromConfig(t *testing.T) {
	yaml := `
sources:
  demo: {enabled: true}
  redis: {enabled: true, addr: "10.0.0.1:6379", pattern: "md-*"}
  streams: {enabled: true, keys: [a, b], start: "0"}
  ingest: {enabled: true, token: t, max_body_bytes: 2048}
snapshot_on_subscribe: false
health: {source_down_unhealthy_after: 5s}
cluster: {enabled: true, redis_addr: "127.0.0.1:1", heartbeat: 1s, ttl: 4s, key_prefix: "x:"}
`
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WSPROXY_SOURCES_STREAMS_KEYS", "k1,k2,k3")
	t.Setenv("WSPROXY_SOURCES_REDIS_DB", "2")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.SnapshotOnSubscribe || cfg.Health.SourceDownUnhealthyAfter != 5*time.Second || cfg.Cluster.TTL != 4*time.Second ||
		len(cfg.Sources.Streams.Keys) != 3 || cfg.Sources.Redis.DB != 2 {
		t.Fatalf("config = %+v", cfg)
	}
	b, err := sources.Build(cfg.Sources)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range b.All {
		names = append(names, s.Name())
	}
	if strings.Join(names, ",") != "demo,redis-pubsub,redis-streams,ingest" || b.Ingest == nil {
		t.Fatalf("sources %v", names)
	}

	shipped, err := config.Load("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := sources.Build(shipped.Sources); len(b.All) != 1 || b.Ingest != nil || shipped.Cluster.Enabled || !*shipped.SnapshotOnSubscribe {
		t.Fatalf("shipped config: only the demo should be on: %+v", shipped.Sources)
	}
}

func TestSourceConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"streams start", "sources: {streams: {enabled: true, start: latest}}", "sources.streams.start"},
		{"redis addr", "sources: {redis: {enabled: true, addr: nohost}}", "sources.redis.addr"},
		{"ingest body", "sources: {ingest: {enabled: true, max_body_bytes: 99999999}}", "max_body_bytes"},
		{"nats url", "sources: {nats: {enabled: true, url: \"http://x\"}}", "sources.nats.url"},
		{"nats overlap", "sources: {nats: {enabled: true, subjects: [a.>, a.b]}}", "overlap"},
		{"jetstream start", "sources: {jetstream: {enabled: true, start: yesterday}}", "sources.jetstream.start"},
		{"jetstream stream", "sources: {jetstream: {enabled: true, stream: a.b}}", "sources.jetstream.stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			cfg.ApplyDefaults()
			if _, err := sources.Build(cfg.Sources); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	cfg := config.Config{Cluster: config.ClusterConfig{Enabled: true, Heartbeat: 5 * time.Second, TTL: 2 * time.Second}}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "cluster.ttl") {
		t.Fatalf("cluster ttl below heartbeat: %v", err)
	}
}

// Every source of the defaulted configuration can be built: config.ApplyDefaults
// fills everything the constructors need.
func TestBuildEverySourceFromDefaults(t *testing.T) {
	cfg := config.Default()
	s := &cfg.Sources
	s.Demo.Enabled, s.Redis.Enabled, s.Streams.Enabled, s.NATS.Enabled, s.JetStream.Enabled, s.Ingest.Enabled = true, true, true, true, true, true
	b, err := sources.Build(cfg.Sources)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.All) != 6 || b.Ingest == nil {
		t.Fatalf("built %d sources", len(b.All))
	}
}
