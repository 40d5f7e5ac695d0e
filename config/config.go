package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"wsproxy/dataflow"
	"wsproxy/pool"
)

// Config is the whole of config.yaml. Every field documents its zero value;
// defaults are applied in one place (ApplyDefaults, defaults.go) and
// combinations checked by Validate (validate.go).
type Config struct {
	// Listen is the address of the WebSocket endpoint and admin API. "": ":8080".
	Listen string `yaml:"listen"`
	// MaxConnections refuses upgrades beyond this many live connections
	// (close 1013 "Server at capacity"). 0: 10000.
	MaxConnections int `yaml:"max_connections"`
	// MaxPayload is the largest client frame accepted; larger ones close the
	// connection with 1009. 0: 1 MiB.
	MaxPayload int64 `yaml:"max_payload"`
	// HeartbeatInterval between WebSocket pings; a connection's first comes
	// at a random point of the interval's second half. 0: 30s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// ConnectionTimeout closes connections silent for this long. 0: 60s.
	ConnectionTimeout time.Duration `yaml:"connection_timeout"`
	// WriteTimeout is the deadline of each socket write. 0: 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// ShutdownTimeout bounds graceful shutdown (flush, close 1001, wait for
	// replies). 0: 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ShutdownDrainShare is the share of the shutdown grace the dispatcher
	// may spend delivering the messages still waiting for it once the
	// sources have stopped; what is left then is discarded and counted
	// (dataflow.shutdownDiscarded). The close frames (1001) are then spread
	// over half of what remains, the rest is for flushing and the clients'
	// close replies. 0: 0.3; at most 0.9.
	ShutdownDrainShare float64 `yaml:"shutdown_drain_share"`
	// DispatchQueue is how many messages may wait between the sources and
	// the dispatcher; beyond it messages are dropped and counted. 0: 65536.
	DispatchQueue int `yaml:"dispatch_queue"`
	// DemoPage serves a live-data demo page at / (upstream/web/index.html).
	// nil (absent): true.
	DemoPage *bool `yaml:"demo_page"`
	// ParkIdleReaders parks an idle connection's socket in an epoll set
	// instead of keeping a read goroutine blocked on it (Linux, plain TCP;
	// TLS connections and other systems always keep the goroutine): an idle
	// connection then costs no goroutine stack. nil (absent): true.
	ParkIdleReaders *bool `yaml:"park_idle_readers"`
	// Upstream is the collector's HTTP API, reverse-proxied on this origin.
	Upstream UpstreamConfig `yaml:"upstream"`
	// Static serves a built frontend at / (replaces the demo page).
	Static StaticConfig `yaml:"static"`

	Queue   QueueConfig   `yaml:"queue"`
	Batch   BatchConfig   `yaml:"batch"`
	Compat  CompatConfig  `yaml:"compat"`
	Limits  LimitsConfig  `yaml:"limits"`
	Sources SourcesConfig `yaml:"sources"`
	Log     LogConfig     `yaml:"log"`

	// SnapshotOnSubscribe sends a client, right after its "subscribed"
	// reply, the latest message of every latest-wins key (ticker, depth,
	// orderbook, kline_*) its new subscription matches. nil (absent): true.
	SnapshotOnSubscribe *bool `yaml:"snapshot_on_subscribe"`
	// SnapshotMaxKeys bounds the (exchange, type, symbol) keys remembered
	// for snapshots; keys beyond it are not remembered (counted in
	// dataflow.snapshotOverflow). 0: 100000.
	SnapshotMaxKeys int `yaml:"snapshot_max_keys"`
	// SnapshotRate bounds the snapshot work one connection may cause, in
	// keys per second: examining a remembered key costs 1, queuing a frame
	// 10 more; the bucket holds one second's worth. Keys left unexamined
	// are counted (dataflow.snapshotRateLimited). 0: 100000.
	SnapshotRate int `yaml:"snapshot_rate"`
	// LatestWinsTypes are the data types whose newer message replaces a
	// queued older one of the same (exchange, type, symbol) for a slow
	// client, and whose latest message snapshots send; an entry ending in
	// "*" is a prefix ("kline*"). Compared case-insensitively. nil (absent):
	// ticker, depth, orderbook, kline*; an empty list: none.
	LatestWinsTypes []string      `yaml:"latest_wins_types"`
	Cluster         ClusterConfig `yaml:"cluster"`
	// AllowedOrigins lists the browser origins ("https://app.example.com",
	// "https://*.example.com") allowed to upgrade; "*" allows any. A request
	// without an Origin header (not a browser) is always allowed. Empty:
	// any origin (legacy behaviour).
	AllowedOrigins []string           `yaml:"allowed_origins"`
	Auth           AuthConfig         `yaml:"auth"`
	TLS            TLSConfig          `yaml:"tls"`
	Admin          AdminConfig        `yaml:"admin"`
	Health         HealthConfig       `yaml:"health"`
	Metrics        MetricsConfig      `yaml:"metrics"`
	SlowConsumer   SlowConsumerConfig `yaml:"slow_consumer"`
	// Memory configures the memory monitor: usage is the Go heap plus the
	// bytes queued for all connections (pool.MemoryConfig).
	Memory pool.MemoryConfig `yaml:"memory"`
	FanOut FanOutConfig      `yaml:"fanout"`
	// Compression configures permessage-deflate (RFC 7692) on /ws
	// (pool.DeflateConfig).
	Compression pool.DeflateConfig `yaml:"compression"`
}

// FanOutConfig tunes how one message reaches a large recipient set.
type FanOutConfig struct {
	// Workers run parallel fan-out chunks. 0: GOMAXPROCS; 1: never parallel.
	Workers int `yaml:"workers"`
	// ParallelMin is the recipient count from which a message is fanned out
	// in parallel chunks. 0: 4096.
	ParallelMin int `yaml:"parallel_min"`
	// ChunkSize is the recipients per chunk. 0: 1024.
	ChunkSize int `yaml:"chunk_size"`
}

// QueueConfig bounds each connection's queue.
type QueueConfig struct {
	// MaxMessages queued per connection, a bound second to MaxBytes: high
	// enough that a burst of a few thousand small frames is absorbed (the
	// queue's ring grows only while it is used and is released once it
	// drains, so idle connections do not pay for it). 0: 4096.
	MaxMessages int `yaml:"max_messages"`
	// MaxBytes queued per connection, the first bound. 0: 1 MiB.
	MaxBytes int `yaml:"max_bytes"`
}

// BatchConfig paces writers.
type BatchConfig struct {
	// MaxMessages written per flush (one syscall). 0: 100.
	MaxMessages int `yaml:"max_messages"`
	// FlushInterval > 0 holds frames up to this long to write them together.
	// 0: write at once when the writer is idle.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxBytes of data per flush (a larger single frame goes alone); bounds
	// what a writer stuck on a stalled client holds. 0: 65536.
	MaxBytes int `yaml:"max_bytes"`
	// InlineWrites lets the fan-out make a connection's write itself,
	// without blocking, when no writer is running; a writer goroutine takes
	// over only what the socket could not take at once (a slow client).
	// Plain TCP only. nil (absent): true.
	InlineWrites *bool `yaml:"inline_writes"`
}

// CompatConfig holds legacy-protocol switches.
type CompatConfig struct {
	// UnfilteredReceiveAll: a connection with no filter and no channel
	// subscription receives every data message (legacy behaviour). nil
	// (absent): true.
	UnfilteredReceiveAll *bool `yaml:"unfiltered_receive_all"`
	// ForwardMetadata adds the pipeline's "metadata" object to each data
	// payload, as the refactored legacy proxy did. Zero value: false, the
	// deployed legacy server's five payload keys.
	ForwardMetadata bool `yaml:"forward_metadata"`
}

// LimitsConfig bounds what one client may ask for.
type LimitsConfig struct {
	// MaxFilters per connection. 0: 16.
	MaxFilters int `yaml:"max_filters"`
	// MaxSymbols per filter. 0: 100.
	MaxSymbols int `yaml:"max_symbols"`
	// MaxExchanges per filter. 0: 32.
	MaxExchanges int `yaml:"max_exchanges"`

	// MaxIndexKeys bounds the index entries one connection's filters expand
	// to (exchanges × data types × symbols, summed over its filters);
	// beyond it subscribe answers LIMIT_EXCEEDED. 0: 10000.
	MaxIndexKeys int `yaml:"max_index_keys"`
	// MaxConnectionsPerIP refuses upgrades (HTTP 429) from an address that
	// already holds this many connections. 0: no per-address limit (behind a
	// load balancer every client shares its address).
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// ConnectRate is the sustained upgrades per second accepted from all
	// clients together (token bucket; HTTP 429 beyond). 0: unlimited.
	ConnectRate float64 `yaml:"connect_rate"`
	// ConnectBurst is the global bucket's size. 0: 2 × ConnectRate (at least 1).
	ConnectBurst int `yaml:"connect_burst"`
	// ConnectRatePerIP is the sustained upgrades per second accepted from one
	// address (HTTP 429 beyond). 0: unlimited.
	ConnectRatePerIP float64 `yaml:"connect_rate_per_ip"`
	// ConnectBurstPerIP is each address's bucket size. 0: 2 × ConnectRatePerIP
	// (at least 1).
	ConnectBurstPerIP int `yaml:"connect_burst_per_ip"`
	// MessageRate is the sustained client messages per second per connection
	// (WebSocket pings included). A message over the rate is not processed
	// and is answered by one RATE_LIMIT_EXCEEDED error. 0: 50; negative: no
	// limit.
	MessageRate float64 `yaml:"message_rate"`
	// StatsCost is how many messages of MessageRate one getStats counts
	// for: its reply is a hundred times a pong, and the STATS it carries
	// change at most every 250 ms (observe.StatsMaxAge). 0: 10 (5 getStats a
	// second at the default rate); 1: like any message.
	StatsCost int `yaml:"stats_cost"`
	// MessageBurst is each connection's bucket size. 0: 2 × MessageRate.
	MessageBurst int `yaml:"message_burst"`
	// RateLimitGrace is how many further messages over the rate a connection
	// may send, after its RATE_LIMIT_EXCEEDED error and before it is back
	// under the rate, until it is closed with 1008. 0: 20.
	RateLimitGrace int `yaml:"rate_limit_grace"`
	// MaxBadFramesPerMinute is each connection's budget of bad frames (not
	// JSON, unknown types, invalid filters, over-limit filters, binary
	// frames), as a token bucket of this many refilled over a minute: a
	// client beyond it is closed with 1008 "Too many invalid messages" and
	// counted. 0: 60; negative: no limit.
	MaxBadFramesPerMinute int `yaml:"max_bad_frames_per_minute"`
	// HandshakeTimeout bounds reading one HTTP request, the WebSocket upgrade
	// included (slow clients that trickle headers are cut off). 0: 10s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
}

// SourcesConfig selects the data sources; several may run at once.
type SourcesConfig struct {
	Demo    dataflow.DemoConfig   `yaml:"demo"`
	Redis   dataflow.RedisConfig  `yaml:"redis"`
	Streams dataflow.StreamConfig `yaml:"streams"`
	Ingest  dataflow.IngestConfig `yaml:"ingest"`
	// RedisSharded is Redis Cluster sharded Pub/Sub (SSUBSCRIBE).
	RedisSharded dataflow.RedisShardedConfig `yaml:"redis_sharded"`
	// NATS is core NATS (subjects market-data.<type>.<exchange>).
	NATS dataflow.NATSConfig `yaml:"nats"`
	// JetStream reads a JetStream stream and resumes from the last stream
	// sequence delivered.
	JetStream dataflow.JetStreamConfig `yaml:"jetstream"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Level: debug, info, warn, error. "": info.
	Level string `yaml:"level"`
	// Format: json or pretty. "": json.
	Format string `yaml:"format"`
}

// EnvPrefix prefixes environment overrides: WSPROXY_LISTEN,
// WSPROXY_BATCH_FLUSH_INTERVAL, WSPROXY_SOURCES_DEMO_ENABLED, ... (the yaml
// path, upper-cased, joined with '_'). Lists are comma-separated.
const EnvPrefix = "WSPROXY"

// Load reads path (if non-empty), applies environment overrides and
// defaults, and validates the result.
func Load(path string) (Config, error) {
	var cfg Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		if cfg, err = Parse(b); err != nil {
			return cfg, err
		}
	}
	if err := CheckEnv(os.Environ()); err != nil {
		return cfg, err
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), EnvPrefix, os.LookupEnv); err != nil {
		return cfg, err
	}
	cfg.ApplyDefaults()
	return cfg, cfg.Validate()
}

// Parse decodes YAML strictly: unknown keys are errors, so that a typo
// does not silently fall back to a default.
func Parse(b []byte) (Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("config: %w%s", err, keysAtErrorLines(b, err))
	}
	return cfg, nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// applyEnv walks v's yaml-tagged fields and sets those with an environment
// variable named prefix_PATH.
func applyEnv(v reflect.Value, prefix string, lookup func(string) (string, bool)) error {
	return walkEnv(v, prefix, nil, func(name string, path []string, fv reflect.Value) error {
		s, ok := lookup(name)
		if !ok {
			return nil
		}
		if err := setFromString(fv, s); err != nil {
			return fmt.Errorf("config: %s: %s=%q: %w", strings.Join(path, "."), name, s, err)
		}
		return nil
	})
}

// walkEnv calls fn for every leaf (non-struct) yaml-tagged field under v,
// with its environment name (prefix_PATH) and yaml path. applyEnv, EnvNames
// and the effective-config printout all walk the same way, so a key added
// to any config struct is known everywhere.
func walkEnv(v reflect.Value, prefix string, path []string, fn func(name string, path []string, fv reflect.Value) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		p := append(path[:len(path):len(path)], tag)
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			if err := walkEnv(fv, name, p, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(name, p, fv); err != nil {
			return err
		}
	}
	return nil
}

func setFromString(fv reflect.Value, s string) error {
	if fv.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(s)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		fv.SetFloat(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case reflect.Pointer:
		nv := reflect.New(fv.Type().Elem())
		if err := setFromString(nv.Elem(), s); err != nil {
			return err
		}
		fv.Set(nv)
	case reflect.Slice:
		if fv.Type().Elem().Kind() != reflect.String {
			return errors.New("unsupported list type")
		}
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		fv.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported kind %s", fv.Kind())
	}
	return nil
}
