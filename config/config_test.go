package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
)

func TestShippedConfigLoads(t *testing.T) {
	cfg, err := config.Load("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":8080" || !cfg.Sources.Demo.Enabled || !*cfg.Compat.UnfilteredReceiveAll || cfg.Queue.MaxMessages != config.DefaultQueueMaxMessages {
		t.Fatalf("shipped config = %+v", cfg)
	}
}

func TestConfigDefaultsAndEnv(t *testing.T) {
	t.Setenv("WSPROXY_LISTEN", "127.0.0.1:9999")
	t.Setenv("WSPROXY_BATCH_FLUSH_INTERVAL", "25ms")
	t.Setenv("WSPROXY_COMPAT_UNFILTERED_RECEIVE_ALL", "false")
	t.Setenv("WSPROXY_SOURCES_DEMO_SYMBOLS", "A/B, C/D")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.Batch.FlushInterval != 25*time.Millisecond ||
		*cfg.Compat.UnfilteredReceiveAll || strings.Join(cfg.Sources.Demo.Symbols, "|") != "A/B|C/D" {
		t.Fatalf("env not applied: %+v", cfg)
	}
	if cfg.MaxConnections != 10000 || cfg.HeartbeatInterval != 30*time.Second || cfg.Limits.MaxFilters != 16 {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, env, want string }{
		{"unknown key", "listen: :1\nlistn: :2\n", "", "listn"},
		{"bad duration", "heartbeat_interval: soon\n", "", "soon"},
		{"timeout below heartbeat", "heartbeat_interval: 30s\nconnection_timeout: 10s\n", "", "connection_timeout"},
		{"bad log format", "log: {format: xml}\n", "", "log.format"},
		{"bad env value", "", "WSPROXY_MAX_CONNECTIONS=many", "WSPROXY_MAX_CONNECTIONS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.env != "" {
				k, v, _ := strings.Cut(tc.env, "=")
				t.Setenv(k, v)
			}
			_, err := config.Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestUpstreamAndStaticConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WSPROXY_UPSTREAM_URL", "http://collector:3000")
	t.Setenv("WSPROXY_UPSTREAM_MAX_BODY_BYTES", "4096")
	t.Setenv("WSPROXY_STATIC_DIR", dir)
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Upstream
	if u.URL != "http://collector:3000" || u.MaxBodyBytes != 4096 || cfg.Static.Dir != dir {
		t.Fatalf("env not applied: %+v %+v", u, cfg.Static)
	}
	if u.DialTimeout != 5*time.Second || u.ResponseTimeout != 30*time.Second || u.IdleTimeout != 5*time.Minute || u.MaxConnections != 512 {
		t.Fatalf("defaults not applied: %+v", u)
	}
}

func TestShippedUpstreamConfigIsTheDefault(t *testing.T) {
	shipped, err := config.Load("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var def config.Config
	def.ApplyDefaults()
	if shipped.Upstream != def.Upstream || shipped.Static != def.Static || def.Upstream.URL != "" || def.Static.Dir != "" {
		t.Fatalf("config.yaml %+v %+v, defaults %+v %+v (both off)", shipped.Upstream, shipped.Static, def.Upstream, def.Static)
	}
}

func TestUpstreamAndStaticConfigErrors(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"scheme", "upstream: {url: 'ftp://collector'}\n", "scheme must be http or https"},
		{"no host", "upstream: {url: 'http://'}\n", "no host"},
		{"query", "upstream: {url: 'http://c/?a=1'}\n", "query"},
		{"body cap", "upstream: {url: 'http://c', max_body_bytes: 2147483648}\n", "upstream.max_body_bytes"},
		{"missing dir", "static: {dir: '" + filepath.Join(empty, "nope") + "'}\n", "not a readable directory"},
		{"no index", "static: {dir: '" + empty + "'}\n", "no index.html"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

// The new switches default on, and memory.trim_after keeps a negative value
// (never) instead of taking the default.
func TestParkInlineAndTrimDefaults(t *testing.T) {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !*cfg.ParkIdleReaders || !*cfg.Batch.InlineWrites || !cfg.PoolConfig().InlineWrites || cfg.Memory.TrimAfter != 5*time.Second {
		t.Fatalf("defaults: park %v, inline %v, trim_after %v", *cfg.ParkIdleReaders, *cfg.Batch.InlineWrites, cfg.Memory.TrimAfter)
	}
	t.Setenv("WSPROXY_MEMORY_TRIM_AFTER", "-1s")
	t.Setenv("WSPROXY_PARK_IDLE_READERS", "false")
	t.Setenv("WSPROXY_BATCH_INLINE_WRITES", "false")
	if cfg, err = config.Load(""); err != nil {
		t.Fatal(err)
	}
	if *cfg.ParkIdleReaders || *cfg.Batch.InlineWrites || cfg.PoolConfig().InlineWrites || cfg.Memory.TrimAfter != -time.Second {
		t.Fatalf("overrides: park %v, inline %v, trim_after %v", *cfg.ParkIdleReaders, *cfg.Batch.InlineWrites, cfg.Memory.TrimAfter)
	}
}
