package dataflow

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// JetStreamConfig configures the JetStream source.
type JetStreamConfig struct {
	// Enabled turns the source on. Zero value: off.
	Enabled bool `yaml:"enabled"`
	// URL of the server, or several comma-separated, as for NATSConfig.
	// Default nats://127.0.0.1:4222.
	URL string `yaml:"url"`
	// Stream is the JetStream stream read (the collector creates it, e.g.
	// over the subjects market-data.>). Default "MARKET_DATA".
	Stream string `yaml:"stream"`
	// Subjects filter the stream (market-data.trade.>, ...); more than one
	// needs nats-server 2.10 or later. Empty: the whole stream.
	Subjects []string `yaml:"subjects"`
	// Start is where reading begins when the proxy starts: "new" only
	// messages stored from now on, "first" everything the stream holds, a
	// stream sequence ("12345"), or an RFC 3339 time ("2026-12-01T10:00:00Z").
	// After that the source always resumes from the last stream sequence it
	// delivered, across reconnects and server restarts. Default "new".
	Start string `yaml:"start"`
	// Name is the client connection name the server shows. Default "wsproxy".
	Name string `yaml:"name"`
	// User and Password, or Token, authenticate. Empty: none.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
	// BatchSize is how many messages one pull request asks for (what the
	// client buffers at most). Default 512.
	BatchSize int `yaml:"batch_size"`
	// Heartbeat is the idle heartbeat of pull requests, 500ms to 15s; two
	// missed ones make the source recreate its consumer (a silent network
	// is noticed within about twice this). Default 5s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// ConnectTimeout bounds one connection attempt and each JetStream API
	// request. Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// PingInterval between client pings; two unanswered pings close the
	// connection. Default 10s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// BackoffMin is the first reconnect delay. Default 100ms.
	BackoffMin time.Duration `yaml:"backoff_min"`
	// BackoffMax caps the reconnect delay. Default 10s.
	BackoffMax time.Duration `yaml:"backoff_max"`
}

// consumerInactive is how long the server keeps a consumer of a source
// that went away (a killed proxy, a cut connection) before deleting it.
const consumerInactive = 30 * time.Second

// JetStream is the JetStream source. It reads a stream through an ordered,
// ephemeral consumer that it manages itself (no acknowledgements, the
// consumer sequence checked on every message): it remembers the last stream
// sequence it delivered, and after a network cut, a missed heartbeat or a
// server restart it creates a new consumer that starts right after it, so
// that reading resumes without gap and without duplicate. When the stream
// no longer holds the next sequence (trimmed by its limits, or purged), the
// missing range is counted in Gaps and logged once. Stats, Name, Sequence
// and SetLogger are safe for concurrent use; Run is called once.
type JetStream struct {
	cfg JetStreamConfig
	c   counters
	log natsLog

	startSeq  uint64    // start: a sequence (1 for "first"); 0 otherwise
	startTime time.Time // start: a time
}

var _ Source = (*JetStream)(nil)

// NewJetStream returns the source; cfg comes with its defaults applied
// (config.ApplyDefaults).
func NewJetStream(cfg JetStreamConfig) (*JetStream, error) {
	if err := checkPositive(setting{"sources.jetstream.batch_size", int64(cfg.BatchSize)},
		setting{"sources.jetstream.connect_timeout", int64(cfg.ConnectTimeout)},
		setting{"sources.jetstream.ping_interval", int64(cfg.PingInterval)},
		setting{"sources.jetstream.backoff_min", int64(cfg.BackoffMin)}, setting{"sources.jetstream.backoff_max", int64(cfg.BackoffMax)}); err != nil {
		return nil, err
	}
	if cfg.Stream == "" || cfg.Start == "" || cfg.Name == "" {
		return nil, fmt.Errorf("%w: sources.jetstream.stream %q, start %q and name %q must be set", ErrConfig, cfg.Stream, cfg.Start, cfg.Name)
	}
	if err := checkNATSURL("sources.jetstream.url", cfg.URL); err != nil {
		return nil, err
	}
	if strings.ContainsAny(cfg.Stream, ".*> \t\r\n/\\") {
		return nil, fmt.Errorf("%w: sources.jetstream.stream %q: a stream name has no '.', '*', '>', '/', '\\' or white space", ErrConfig, cfg.Stream)
	}
	if err := checkSubjects("sources.jetstream.subjects", cfg.Subjects); err != nil {
		return nil, err
	}
	if cfg.Heartbeat < 500*time.Millisecond || cfg.Heartbeat > 15*time.Second {
		return nil, fmt.Errorf("%w: sources.jetstream.heartbeat %s: want 500ms to 15s", ErrConfig, cfg.Heartbeat)
	}
	j := &JetStream{cfg: cfg}
	switch start := strings.TrimSpace(cfg.Start); {
	case start == "new":
	case start == "first":
		j.startSeq = 1
	default:
		if n, err := strconv.ParseUint(start, 10, 64); err == nil && n > 0 {
			j.startSeq = n
			break
		}
		t, err := time.Parse(time.RFC3339Nano, start)
		if err != nil {
			return nil, fmt.Errorf("%w: sources.jetstream.start %q: want \"new\", \"first\", a stream sequence (1 or more) or an RFC 3339 time", ErrConfig, cfg.Start)
		}
		j.startTime = t
	}
	j.c.name, j.c.typ = "jetstream", "jetstream"
	j.log.set(zerolog.Nop())
	return j, nil
}

// Name implements Source.
func (j *JetStream) Name() string { return j.c.name }

// Stats implements Source.
func (j *JetStream) Stats() SourceStatus { return j.c.status() }

// SetLogger implements Logged.
func (j *JetStream) SetLogger(log zerolog.Logger) { j.log.set(log) }

// Sequence returns the last stream sequence delivered (0 before the first).
func (j *JetStream) Sequence() uint64 { return j.c.sequence.Load() }

// position is where the next consumer starts; it is owned by Run.
type position struct {
	next    uint64    // the next stream sequence wanted; 0 while unresolved
	created time.Time // creation time of the stream read; zero before the first consumer
}

// Run implements Source.
func (j *JetStream) Run(ctx context.Context, sink Sink) error {
	defer j.c.setConnected(false)
	pos := position{next: j.startSeq}
	bo := Backoff{Min: j.cfg.BackoffMin, Max: j.cfg.BackoffMax}
	for ctx.Err() == nil {
		err := j.session(ctx, sink, &pos, &bo)
		if ctx.Err() != nil {
			return nil
		}
		if j.c.connected.Load() {
			j.log.get().Warn().Err(err).Uint64("next_sequence", pos.next).Msg("jetstream source interrupted")
		}
		j.c.setConnected(false)
		j.c.fail(err)
		if !sleepCtx(ctx, bo.Next()) {
			return nil
		}
	}
	return nil
}

// session holds one connection: it creates a consumer from pos and reads
// until the connection fails, recreating the consumer (after a backoff)
// when only the consumer failed.
func (j *JetStream) session(ctx context.Context, sink Sink, pos *position, bo *Backoff) error {
	conn, err := dialNATS(natsConnOptions{url: j.cfg.URL, name: j.cfg.Name, user: j.cfg.User,
		password: j.cfg.Password, token: j.cfg.Token, connectTimeout: j.cfg.ConnectTimeout,
		pingInterval: j.cfg.PingInterval}, j.async)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	defer conn.nc.Close()
	js, err := jetstream.New(conn.nc, jetstream.WithDefaultTimeout(j.cfg.ConnectTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	for {
		cons, err := j.consumer(ctx, js, pos)
		if err != nil {
			return err
		}
		j.c.setConnected(true)
		bo.Reset()
		err = j.consume(ctx, cons, sink, pos)
		j.deleteConsumer(js, cons)
		if ctx.Err() != nil || conn.nc.IsClosed() {
			select {
			case <-conn.closed:
				return fmt.Errorf("jetstream: %w", conn.closedErr())
			default:
				return err
			}
		}
		// Only the consumer failed (missed heartbeats, deleted, out of
		// sequence): a new one on the same connection.
		if j.c.connected.Load() {
			j.log.get().Warn().Err(err).Uint64("next_sequence", pos.next).Msg("jetstream consumer recreated")
		}
		j.c.setConnected(false)
		j.c.fail(err)
		if !sleepCtx(ctx, bo.Next()) {
			return ctx.Err()
		}
	}
}

// async handles the library's asynchronous errors.
func (j *JetStream) async(_ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		j.c.slowConsumer.Add(1)
		return
	}
	j.c.fail(fmt.Errorf("jetstream: %w", err))
}

// consumer creates an ephemeral consumer starting at pos and reports a gap
// when the stream no longer holds pos.next.
func (j *JetStream) consumer(ctx context.Context, js jetstream.JetStream, pos *position) (jetstream.Consumer, error) {
	rctx, cancel := context.WithTimeout(ctx, j.cfg.ConnectTimeout)
	defer cancel()
	st, err := js.Stream(rctx, j.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream %s: %w", j.cfg.Stream, err)
	}
	cc := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: consumerInactive,
		Description:       "wsproxy " + j.cfg.Name,
	}
	switch len(j.cfg.Subjects) {
	case 0:
	case 1:
		cc.FilterSubject = j.cfg.Subjects[0]
	default:
		cc.FilterSubjects = j.cfg.Subjects
	}
	info := st.CachedInfo()
	switch {
	case !pos.created.IsZero() && !info.Created.Equal(pos.created):
		// Deleted and created again: its sequences started over, and
		// everything it holds is new to us.
		j.log.get().Warn().Str("stream", j.cfg.Stream).Uint64("next_sequence", pos.next).
			Msg("jetstream stream was recreated: reading it from its first message")
		pos.next = 1
	case pos.next > 1 && info.State.LastSeq+1 < pos.next:
		// The server lost messages it had stored (a store damaged by a
		// crash): what it stores from now on would otherwise be skipped.
		j.log.get().Warn().Str("stream", j.cfg.Stream).Uint64("next_sequence", pos.next).Uint64("last_sequence", info.State.LastSeq).
			Msg("jetstream stream went back behind our position: reading on from its last message")
		pos.next = info.State.LastSeq + 1
	}
	pos.created = info.Created
	switch {
	case pos.next > 0:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, pos.next
	case !j.startTime.IsZero():
		t := j.startTime
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	default:
		// "new" becomes a concrete sequence before the first consumer:
		// were it asked again after a reconnect, messages stored meanwhile
		// would be skipped.
		pos.next = info.State.LastSeq + 1
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, pos.next
	}
	cons, err := st.CreateConsumer(rctx, cc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: create consumer on %s: %w", j.cfg.Stream, err)
	}
	if pos.next > 0 {
		// Read the stream's state after the consumer exists: whatever it no
		// longer holds now, the consumer will not deliver.
		info, err := st.Info(rctx)
		if err != nil {
			j.deleteConsumer(js, cons)
			return nil, fmt.Errorf("jetstream: stream %s: %w", j.cfg.Stream, err)
		}
		if first := info.State.FirstSeq; first > pos.next {
			j.reportGap(pos.next, first-1, "the stream no longer holds them (trimmed or purged)")
			pos.next = first
		}
	}
	return cons, nil
}

func (j *JetStream) reportGap(from, to uint64, why string) {
	what := fmt.Sprintf("stream %s sequences %d..%d lost: %s", j.cfg.Stream, from, to, why)
	j.c.gap(what)
	j.log.get().Warn().Str("stream", j.cfg.Stream).Uint64("from_sequence", from).Uint64("to_sequence", to).
		Uint64("missing", to-from+1).Msg("jetstream gap: " + why)
}

func (j *JetStream) deleteConsumer(js jetstream.JetStream, cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// Best effort: a consumer left behind is deleted by the server after
	// consumerInactive.
	_ = js.DeleteConsumer(ctx, j.cfg.Stream, cons.CachedInfo().Name)
}

// errOutOfOrder ends a consumer whose consumer sequence skipped (a message
// lost between server and client): the next one resumes after the last
// delivered stream sequence.
var errOutOfOrder = errors.New("jetstream: consumer sequence out of order")

// consume reads cons until it fails or ctx ends.
func (j *JetStream) consume(ctx context.Context, cons jetstream.Consumer, sink Sink, pos *position) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(j.cfg.BatchSize), jetstream.PullHeartbeat(j.cfg.Heartbeat))
	if err != nil {
		return fmt.Errorf("jetstream: consume: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	var cseq uint64
	filtered := len(j.cfg.Subjects) > 0
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("jetstream: next: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("jetstream: message metadata: %w", err)
		}
		if meta.Sequence.Consumer != cseq+1 {
			return fmt.Errorf("%w: %d after %d", errOutOfOrder, meta.Sequence.Consumer, cseq)
		}
		cseq = meta.Sequence.Consumer
		seq := meta.Sequence.Stream
		if pos.next > 0 {
			if seq < pos.next {
				continue // already delivered
			}
			if seq > pos.next && !filtered {
				// Reading the whole stream, every sequence is ours: a jump
				// is a range removed before we read it.
				j.reportGap(pos.next, seq-1, "removed from the stream before they were read")
			}
		}
		pos.next = seq + 1
		j.c.sequence.Store(seq)
		md, err := Decode(m.Data())
		if err != nil {
			j.c.reject(fmt.Errorf("subject %s sequence %d: %w", m.Subject(), seq, err))
			continue
		}
		j.c.deliver(sink, &md)
	}
}
