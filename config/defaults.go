package config

import (
	"time"

	"wsproxy/pool"
)

// Defaults of the keys, by yaml path. ApplyDefaults is the one place they
// are applied; the comment of each field (and config.yaml) repeats its
// value.
const (
	DefaultListen             = ":8080"
	DefaultMaxConnections     = 10000
	DefaultMaxPayload         = 1 << 20
	DefaultHeartbeatInterval  = 30 * time.Second
	DefaultConnectionTimeout  = 60 * time.Second
	DefaultWriteTimeout       = 10 * time.Second
	DefaultShutdownTimeout    = 10 * time.Second
	DefaultShutdownDrainShare = 0.3
	DefaultDispatchQueue      = 65536

	DefaultQueueMaxMessages = 4096
	DefaultQueueMaxBytes    = 1 << 20
	DefaultBatchMaxMessages = 100
	DefaultBatchMaxBytes    = 64 << 10
	// DefaultCloseGrace is how long a connection waits for the client's
	// close reply (pool.Config.CloseGrace; not a key).
	DefaultCloseGrace = 2 * time.Second

	DefaultMaxFilters   = 16
	DefaultMaxSymbols   = 100
	DefaultMaxExchanges = 32
	DefaultMaxIndexKeys = 10000
	// DefaultMaxValueLen bounds one exchange, symbol or data type of a
	// filter (subscription.Limits.MaxValueLen; not a key).
	DefaultMaxValueLen           = 64
	DefaultMessageRate           = 50
	DefaultRateLimitGrace        = 20
	DefaultStatsCost             = 10
	DefaultMaxBadFramesPerMinute = 60
	DefaultHandshakeTimeout      = 10 * time.Second

	DefaultLogLevel  = "info"
	DefaultLogFormat = "json"

	DefaultSnapshotMaxKeys = 100000
	DefaultSnapshotRate    = 100000

	DefaultClusterRedisAddr = "127.0.0.1:6379"
	DefaultClusterKeyPrefix = "wsproxy:node:"
	DefaultClusterHeartbeat = 5 * time.Second
	// The cluster TTL defaults to DefaultClusterTTLBeats heartbeats.
	DefaultClusterTTLBeats = 3

	DefaultAuthQueryParam = "token"
	DefaultJWTAlgorithm   = "HS256"

	DefaultAdminDrainWindow              = 30 * time.Second
	DefaultHealthLatencyDegraded         = 15 * time.Millisecond
	DefaultHealthLatencyUnhealthy        = 30 * time.Millisecond
	DefaultHealthErrorRateDegraded       = 0.01
	DefaultHealthErrorRateUnhealthy      = 0.05
	DefaultHealthDecodeErrorRateDegraded = 0.01
	DefaultHealthDecodeErrorRateUnhealth = 0.25
	DefaultHealthMinEvents               = 100
	DefaultHealthSourceDownUnhealthy     = 60 * time.Second
	DefaultMetricsWindow                 = 10 * time.Second

	DefaultSlowConsumerMaxLag   = 10 * time.Second
	DefaultMemoryThreshold      = 512 << 20
	DefaultMemorySampleInterval = 100 * time.Millisecond
	DefaultMemoryElevatedRatio  = 0.8
	DefaultMemoryCriticalRatio  = 1.0
	DefaultMemoryRecoverRatio   = 0.7
	DefaultMemoryRecoverAfter   = time.Second
	DefaultMemoryTrimAfter      = 5 * time.Second

	DefaultFanOutParallelMin = 4096
	DefaultFanOutChunkSize   = 1024

	DefaultUpstreamDialTimeout     = 5 * time.Second
	DefaultUpstreamResponseTimeout = 30 * time.Second
	DefaultUpstreamIdleTimeout     = 5 * time.Minute
	DefaultUpstreamMaxBodyBytes    = 1 << 20
	DefaultUpstreamMaxConnections  = 512

	DefaultCompressionMode          = pool.DeflatePerMessage
	DefaultCompressionMinSize       = 128
	DefaultCompressionLevel         = 2
	DefaultCompressionMessageLevel  = 1
	DefaultCompressionMaxStreams    = 16
	DefaultCompressionResetEvery    = 1000
	DefaultCompressionResetInterval = 5 * time.Second

	// Sources (sources.*): the reconnect delays of every source but
	// redis_sharded, then each source's own.
	DefaultSourceBackoffMin = 100 * time.Millisecond
	DefaultSourceBackoffMax = 10 * time.Second

	DefaultDemoExchange = "demo"
	DefaultDemoInterval = 200 * time.Millisecond

	DefaultRedisAddr        = "127.0.0.1:6379"
	DefaultRedisPattern     = "market-data-*"
	DefaultRedisHealthCheck = 15 * time.Second

	DefaultRedisShardedMaxBackoff = 5 * time.Second

	DefaultStreamsKey   = "market-data"
	DefaultStreamsStart = "$"
	DefaultStreamsBlock = 2 * time.Second
	DefaultStreamsCount = 512

	DefaultIngestMaxBodyBytes = 1 << 20
	DefaultIngestMaxErrors    = 100

	DefaultNATSURL             = "nats://127.0.0.1:4222"
	DefaultNATSSubject         = "market-data.>"
	DefaultNATSName            = "wsproxy"
	DefaultNATSPendingMessages = 65536
	DefaultNATSPendingBytes    = 64 << 20
	DefaultNATSConnectTimeout  = 5 * time.Second
	DefaultNATSPingInterval    = 10 * time.Second

	DefaultJetStreamStream    = "MARKET_DATA"
	DefaultJetStreamStart     = "new"
	DefaultJetStreamBatchSize = 512
	DefaultJetStreamHeartbeat = 5 * time.Second
)

// DefaultDemoSymbols are the demo feed's symbols when none are configured.
var DefaultDemoSymbols = []string{"BTC/USDT", "ETH/USDT", "SOL/USDT"}

// DefaultLatestWinsTypes is the default of latest_wins_types: tickers,
// depth and order-book snapshots and kline updates. Trades never are.
var DefaultLatestWinsTypes = []string{"ticker", "depth", "orderbook", "kline*"}

// Default returns the configuration with every default applied: what an
// empty config.yaml and no environment give.
func Default() Config {
	var c Config
	c.ApplyDefaults()
	return c
}

// ApplyDefaults fills zero fields with their documented defaults. It is
// idempotent, and the only place defaults are applied: pool, subscription
// and dataflow take the values it produced (PoolConfig, SubscriptionLimits,
// Sources) and apply none of their own.
func (c *Config) ApplyDefaults() {
	defString(&c.Listen, DefaultListen)
	defInt(&c.MaxConnections, DefaultMaxConnections)
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	defDur(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	defDur(&c.ConnectionTimeout, DefaultConnectionTimeout)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
	defInt(&c.DispatchQueue, DefaultDispatchQueue)
	defFloat(&c.ShutdownDrainShare, DefaultShutdownDrainShare)
	defBool(&c.DemoPage, true)
	defBool(&c.ParkIdleReaders, true)

	defInt(&c.Queue.MaxMessages, DefaultQueueMaxMessages)
	defInt(&c.Queue.MaxBytes, DefaultQueueMaxBytes)
	defInt(&c.Batch.MaxMessages, DefaultBatchMaxMessages)
	defInt(&c.Batch.MaxBytes, DefaultBatchMaxBytes)
	defBool(&c.Batch.InlineWrites, true)
	defBool(&c.Compat.UnfilteredReceiveAll, true)

	l := &c.Limits
	defInt(&l.MaxFilters, DefaultMaxFilters)
	defInt(&l.MaxSymbols, DefaultMaxSymbols)
	defInt(&l.MaxExchanges, DefaultMaxExchanges)
	defInt(&l.MaxIndexKeys, DefaultMaxIndexKeys)
	if l.ConnectRate > 0 && l.ConnectBurst <= 0 {
		l.ConnectBurst = max(1, int(2*l.ConnectRate))
	}
	if l.ConnectRatePerIP > 0 && l.ConnectBurstPerIP <= 0 {
		l.ConnectBurstPerIP = max(1, int(2*l.ConnectRatePerIP))
	}
	if l.MessageRate == 0 { // negative: no limit
		l.MessageRate = DefaultMessageRate
	}
	if l.MessageRate > 0 && l.MessageBurst <= 0 {
		l.MessageBurst = max(1, int(2*l.MessageRate))
	}
	defInt(&l.RateLimitGrace, DefaultRateLimitGrace)
	defInt(&l.StatsCost, DefaultStatsCost)
	if l.MaxBadFramesPerMinute == 0 { // negative: no budget
		l.MaxBadFramesPerMinute = DefaultMaxBadFramesPerMinute
	}
	defDur(&l.HandshakeTimeout, DefaultHandshakeTimeout)

	defString(&c.Auth.Mode, AuthNone)
	defString(&c.Auth.QueryParam, DefaultAuthQueryParam)
	if c.Auth.Mode == AuthJWT {
		defString(&c.Auth.JWT.Algorithm, DefaultJWTAlgorithm)
	}

	defString(&c.Log.Level, DefaultLogLevel)
	defString(&c.Log.Format, DefaultLogFormat)

	defBool(&c.SnapshotOnSubscribe, true)
	defInt(&c.SnapshotMaxKeys, DefaultSnapshotMaxKeys)
	defInt(&c.SnapshotRate, DefaultSnapshotRate)
	if c.LatestWinsTypes == nil {
		c.LatestWinsTypes = append([]string(nil), DefaultLatestWinsTypes...)
	}

	cl := &c.Cluster
	defString(&cl.RedisAddr, DefaultClusterRedisAddr)
	defString(&cl.KeyPrefix, DefaultClusterKeyPrefix)
	defDur(&cl.Heartbeat, DefaultClusterHeartbeat)
	defDur(&cl.TTL, DefaultClusterTTLBeats*cl.Heartbeat)

	defDur(&c.Admin.DrainWindow, DefaultAdminDrainWindow)
	defBool(&c.Admin.UI, true)
	h := &c.Health
	defDur(&h.LatencyDegraded, DefaultHealthLatencyDegraded)
	defDur(&h.LatencyUnhealthy, DefaultHealthLatencyUnhealthy)
	defFloat(&h.ErrorRateDegraded, DefaultHealthErrorRateDegraded)
	defFloat(&h.ErrorRateUnhealthy, DefaultHealthErrorRateUnhealthy)
	defFloat(&h.DecodeErrorRateDegraded, DefaultHealthDecodeErrorRateDegraded)
	defFloat(&h.DecodeErrorRateUnhealthy, DefaultHealthDecodeErrorRateUnhealth)
	defInt(&h.MinEvents, DefaultHealthMinEvents)
	defDur(&h.SourceDownUnhealthyAfter, DefaultHealthSourceDownUnhealthy)
	defBool(&h.ReadyRequiresSource, true)
	defDur(&c.Metrics.Window, DefaultMetricsWindow)

	defDur(&c.SlowConsumer.MaxLag, DefaultSlowConsumerMaxLag)
	m := &c.Memory
	if m.Threshold == 0 { // negative: no monitor
		m.Threshold = DefaultMemoryThreshold
	}
	defDur(&m.SampleInterval, DefaultMemorySampleInterval)
	defFloat(&m.ElevatedRatio, DefaultMemoryElevatedRatio)
	defFloat(&m.CriticalRatio, DefaultMemoryCriticalRatio)
	defFloat(&m.RecoverRatio, DefaultMemoryRecoverRatio)
	defDur(&m.RecoverAfter, DefaultMemoryRecoverAfter)
	if m.TrimAfter == 0 { // negative: never
		m.TrimAfter = DefaultMemoryTrimAfter
	}

	defInt(&c.FanOut.ParallelMin, DefaultFanOutParallelMin)
	defInt(&c.FanOut.ChunkSize, DefaultFanOutChunkSize)

	u := &c.Upstream
	defDur(&u.DialTimeout, DefaultUpstreamDialTimeout)
	defDur(&u.ResponseTimeout, DefaultUpstreamResponseTimeout)
	defDur(&u.IdleTimeout, DefaultUpstreamIdleTimeout)
	defInt(&u.MaxBodyBytes, DefaultUpstreamMaxBodyBytes)
	defInt(&u.MaxConnections, DefaultUpstreamMaxConnections)

	z := &c.Compression
	if z.Mode == "" {
		z.Mode = DefaultCompressionMode
	}
	defInt(&z.MinSize, DefaultCompressionMinSize)
	if z.Level == 0 { // out of range is Validate's
		z.Level = DefaultCompressionLevel
	}
	if z.MessageLevel == 0 {
		z.MessageLevel = DefaultCompressionMessageLevel
	}
	defInt(&z.MaxStreams, DefaultCompressionMaxStreams)
	defInt(&z.ResetEvery, DefaultCompressionResetEvery)
	defDur(&z.ResetInterval, DefaultCompressionResetInterval)

	c.Sources.applyDefaults()
}

func (s *SourcesConfig) applyDefaults() {
	d := &s.Demo
	defString(&d.Exchange, DefaultDemoExchange)
	defList(&d.Symbols, DefaultDemoSymbols...)
	defDur(&d.Interval, DefaultDemoInterval)

	r := &s.Redis
	defString(&r.Addr, DefaultRedisAddr)
	defString(&r.Pattern, DefaultRedisPattern)
	defDur(&r.HealthCheck, DefaultRedisHealthCheck)
	defBackoff(&r.BackoffMin, &r.BackoffMax)

	defDur(&s.RedisSharded.MaxBackoff, DefaultRedisShardedMaxBackoff)

	st := &s.Streams
	defString(&st.Addr, DefaultRedisAddr)
	defList(&st.Keys, DefaultStreamsKey)
	defString(&st.Start, DefaultStreamsStart)
	defDur(&st.Block, DefaultStreamsBlock)
	if st.Count <= 0 {
		st.Count = DefaultStreamsCount
	}
	defBackoff(&st.BackoffMin, &st.BackoffMax)

	in := &s.Ingest
	defInt(&in.MaxBodyBytes, DefaultIngestMaxBodyBytes)
	defInt(&in.MaxErrors, DefaultIngestMaxErrors)

	n := &s.NATS
	defString(&n.URL, DefaultNATSURL)
	defList(&n.Subjects, DefaultNATSSubject)
	defString(&n.Name, DefaultNATSName)
	defInt(&n.PendingMessages, DefaultNATSPendingMessages)
	defInt(&n.PendingBytes, DefaultNATSPendingBytes)
	defDur(&n.ConnectTimeout, DefaultNATSConnectTimeout)
	defDur(&n.PingInterval, DefaultNATSPingInterval)
	defBackoff(&n.BackoffMin, &n.BackoffMax)

	j := &s.JetStream
	defString(&j.URL, DefaultNATSURL)
	defString(&j.Stream, DefaultJetStreamStream)
	defString(&j.Start, DefaultJetStreamStart)
	defString(&j.Name, DefaultNATSName)
	defInt(&j.BatchSize, DefaultJetStreamBatchSize)
	defDur(&j.Heartbeat, DefaultJetStreamHeartbeat)
	defDur(&j.ConnectTimeout, DefaultNATSConnectTimeout)
	defDur(&j.PingInterval, DefaultNATSPingInterval)
	defBackoff(&j.BackoffMin, &j.BackoffMax)
}

func defBackoff(lo, hi *time.Duration) {
	defDur(lo, DefaultSourceBackoffMin)
	defDur(hi, DefaultSourceBackoffMax)
}

func defList(v *[]string, d ...string) {
	if len(*v) == 0 {
		*v = append([]string(nil), d...)
	}
}

func defInt(v *int, d int) {
	if *v <= 0 {
		*v = d
	}
}

func defDur(v *time.Duration, d time.Duration) {
	if *v <= 0 {
		*v = d
	}
}

func defFloat(v *float64, d float64) {
	if *v <= 0 {
		*v = d
	}
}

func defString(v *string, d string) {
	if *v == "" {
		*v = d
	}
}

// defBool sets an absent (nil) switch.
func defBool(v **bool, d bool) {
	if *v == nil {
		*v = &d
	}
}
