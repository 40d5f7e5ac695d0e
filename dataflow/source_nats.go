package dataflow

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// NATSConfig configures the core NATS source.
type NATSConfig struct {
	// Enabled turns the source on. Zero value: off.
	Enabled bool `yaml:"enabled"`
	// URL of the server, or several comma-separated ("nats://h1:4222,
	// nats://h2:4222"); credentials may be embedded (nats://user:pass@h:4222).
	// Default nats://127.0.0.1:4222.
	URL string `yaml:"url"`
	// Subjects subscribed, each message body one MarketData JSON. The
	// collector publishes to market-data.<type>.<exchange>
	// (market-data.trade.binance). There is no queue group: every node
	// receives every message. Subjects must not overlap (a message matching
	// two would arrive twice). Default ["market-data.>"].
	Subjects []string `yaml:"subjects"`
	// Name is the client connection name the server shows. Default "wsproxy".
	Name string `yaml:"name"`
	// User and Password, or Token, authenticate. Empty: none.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
	// PendingMessages and PendingBytes bound what the client library
	// buffers per subject between the socket and the proxy; beyond either
	// the library drops (a slow-consumer event, counted). Default 65536
	// messages, 64 MiB.
	PendingMessages int `yaml:"pending_messages"`
	PendingBytes    int `yaml:"pending_bytes"`
	// ConnectTimeout bounds one connection attempt. Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// PingInterval between client pings; two unanswered pings close the
	// connection (a silently dead server is noticed). Default 10s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// BackoffMin is the first reconnect delay. Default 100ms.
	BackoffMin time.Duration `yaml:"backoff_min"`
	// BackoffMax caps the reconnect delay. Default 10s.
	BackoffMax time.Duration `yaml:"backoff_max"`
}

// checkNATSURL checks a comma-separated list of server URLs.
func checkNATSURL(field, urls string) error {
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		p, err := url.Parse(u)
		if err != nil || p.Host == "" {
			return fmt.Errorf("%w: %s %q: want nats://host:port", ErrConfig, field, u)
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%w: %s %q: scheme %q, want nats, tls, ws or wss", ErrConfig, field, u, p.Scheme)
		}
	}
	return nil
}

// checkSubjects rejects empty, malformed and overlapping subjects.
func checkSubjects(field string, subjects []string) error {
	for i, s := range subjects {
		if err := checkSubject(s); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrConfig, field, s, err)
		}
		for _, o := range subjects[:i] {
			if subjectsOverlap(s, o) {
				return fmt.Errorf("%w: %s: %q and %q overlap (a message matching both would be delivered twice)", ErrConfig, field, o, s)
			}
		}
	}
	return nil
}

func checkSubject(s string) error {
	if s == "" {
		return errors.New("empty subject")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("white space in subject")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return errors.New("empty token")
		case t == ">" && i != len(toks)-1:
			return errors.New("'>' must be the last token")
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return errors.New("wildcard inside a token")
		}
	}
	return nil
}

// subjectsOverlap reports whether some subject matches both patterns.
func subjectsOverlap(a, b string) bool {
	ta, tb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(ta) && i < len(tb); i++ {
		x, y := ta[i], tb[i]
		if x == ">" || y == ">" {
			return true
		}
		if x != y && x != "*" && y != "*" {
			return false
		}
	}
	return len(ta) == len(tb)
}

// natsConnOptions are the connection settings shared by the NATS sources.
type natsConnOptions struct {
	url, name, user, password, token string
	connectTimeout, pingInterval     time.Duration
}

// natsConn is one connection of a NATS source. The library's own reconnect
// is off: the source reconnects with its capped, jittered Backoff, as the
// Redis sources do, and starts a new session (new subscriptions, a new
// consumer) on every connection.
type natsConn struct {
	nc     *nats.Conn
	closed chan struct{}
	// onAsync receives the library's asynchronous errors (slow consumer,
	// permission violations).
	onAsync func(sub *nats.Subscription, err error)

	mu      sync.Mutex
	lastErr error
}

func dialNATS(o natsConnOptions, onAsync func(*nats.Subscription, error)) (*natsConn, error) {
	c := &natsConn{closed: make(chan struct{}), onAsync: onAsync}
	opts := []nats.Option{
		nats.Name(o.name), nats.NoReconnect(), nats.Timeout(o.connectTimeout),
		nats.PingInterval(o.pingInterval), nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { c.setErr(err) }),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if c.onAsync != nil {
				c.onAsync(sub, err)
			}
		}),
	}
	if o.user != "" {
		opts = append(opts, nats.UserInfo(o.user, o.password))
	}
	if o.token != "" {
		opts = append(opts, nats.Token(o.token))
	}
	nc, err := nats.Connect(o.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", redactURL(o.url), err)
	}
	c.nc = nc
	return c, nil
}

func (c *natsConn) setErr(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// closedErr is why the connection closed.
func (c *natsConn) closedErr() error {
	c.mu.Lock()
	err := c.lastErr
	c.mu.Unlock()
	if err == nil {
		err = c.nc.LastError()
	}
	if err == nil {
		return errors.New("connection closed")
	}
	return fmt.Errorf("connection closed: %w", err)
}

// redactURL hides passwords embedded in server URLs.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil && p.User != nil {
			parts[i] = p.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// natsLog is a source's logger, set once before Run.
type natsLog struct {
	mu  sync.Mutex
	log zerolog.Logger
}

func (l *natsLog) set(log zerolog.Logger) {
	l.mu.Lock()
	l.log = log
	l.mu.Unlock()
}

func (l *natsLog) get() *zerolog.Logger {
	l.mu.Lock()
	defer l.mu.Unlock()
	log := l.log
	return &log
}

// NATS is the core NATS source: it subscribes to subjects (no queue group,
// so that every node receives everything) and decodes each message body as
// one MarketData. Core NATS keeps no history: what is published while the
// connection is down is lost (use JetStream when gaps matter). The read path
// never waits on the proxy: messages it cannot take are counted and dropped,
// and when the library's pending buffer overflows the library drops and the
// slow-consumer event is counted. Stats, Name and SetLogger are safe for
// concurrent use; Run is called once.
type NATS struct {
	cfg NATSConfig
	c   counters
	log natsLog

	mu      sync.Mutex
	libDrop map[*nats.Subscription]int // library drops already counted, per subscription
}

var _ Source = (*NATS)(nil)

// NewNATS returns the source; cfg comes with its defaults applied
// (config.ApplyDefaults).
func NewNATS(cfg NATSConfig) (*NATS, error) {
	if err := checkNATSURL("sources.nats.url", cfg.URL); err != nil {
		return nil, err
	}
	if len(cfg.Subjects) == 0 {
		return nil, fmt.Errorf("%w: sources.nats.subjects: none", ErrConfig)
	}
	if err := checkSubjects("sources.nats.subjects", cfg.Subjects); err != nil {
		return nil, err
	}
	if err := checkPositive(setting{"sources.nats.pending_messages", int64(cfg.PendingMessages)},
		setting{"sources.nats.pending_bytes", int64(cfg.PendingBytes)},
		setting{"sources.nats.connect_timeout", int64(cfg.ConnectTimeout)},
		setting{"sources.nats.ping_interval", int64(cfg.PingInterval)},
		setting{"sources.nats.backoff_min", int64(cfg.BackoffMin)}, setting{"sources.nats.backoff_max", int64(cfg.BackoffMax)}); err != nil {
		return nil, err
	}
	n := &NATS{cfg: cfg, libDrop: map[*nats.Subscription]int{}}
	n.c.name, n.c.typ = "nats", "nats"
	n.log.set(zerolog.Nop())
	return n, nil
}

// Name implements Source.
func (n *NATS) Name() string { return n.c.name }

// Stats implements Source. The library reports one slow-consumer event per
// overflow, not each message it drops: the drops are read here.
func (n *NATS) Stats() SourceStatus {
	n.mu.Lock()
	subs := make([]*nats.Subscription, 0, len(n.libDrop))
	for sub := range n.libDrop {
		subs = append(subs, sub)
	}
	n.mu.Unlock()
	for _, sub := range subs {
		n.countLibraryDrops(sub)
	}
	return n.c.status()
}

// SetLogger implements Logged.
func (n *NATS) SetLogger(log zerolog.Logger) { n.log.set(log) }

// Run implements Source: connect, subscribe, and on any failure reconnect
// after a capped, jittered backoff until ctx ends.
func (n *NATS) Run(ctx context.Context, sink Sink) error {
	defer n.c.setConnected(false)
	bo := Backoff{Min: n.cfg.BackoffMin, Max: n.cfg.BackoffMax}
	for ctx.Err() == nil {
		err := n.session(ctx, sink, &bo)
		if ctx.Err() != nil {
			return nil
		}
		if n.c.connected.Load() {
			n.log.get().Warn().Err(err).Msg("nats source disconnected")
		}
		n.c.setConnected(false)
		n.c.fail(err)
		if !sleepCtx(ctx, bo.Next()) {
			return nil
		}
	}
	return nil
}

func (n *NATS) session(ctx context.Context, sink Sink, bo *Backoff) error {
	conn, err := dialNATS(natsConnOptions{url: n.cfg.URL, name: n.cfg.Name, user: n.cfg.User,
		password: n.cfg.Password, token: n.cfg.Token, connectTimeout: n.cfg.ConnectTimeout,
		pingInterval: n.cfg.PingInterval}, n.async)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer conn.nc.Close()
	handler := func(m *nats.Msg) {
		md, err := Decode(m.Data)
		if err != nil {
			n.c.reject(fmt.Errorf("subject %s: %w", m.Subject, err))
			return
		}
		n.c.deliver(sink, &md)
	}
	subs := make([]*nats.Subscription, 0, len(n.cfg.Subjects))
	defer func() {
		for _, sub := range subs {
			n.countLibraryDrops(sub)
			n.mu.Lock()
			delete(n.libDrop, sub)
			n.mu.Unlock()
		}
	}()
	for _, subj := range n.cfg.Subjects {
		sub, err := conn.nc.Subscribe(subj, handler)
		if err != nil {
			return fmt.Errorf("nats: subscribe %s: %w", subj, err)
		}
		subs = append(subs, sub)
		n.mu.Lock()
		n.libDrop[sub] = 0
		n.mu.Unlock()
		if err := sub.SetPendingLimits(n.cfg.PendingMessages, n.cfg.PendingBytes); err != nil {
			return fmt.Errorf("nats: pending limits: %w", err)
		}
	}
	// The round trip proves the server has registered the subscriptions.
	if err := conn.nc.FlushTimeout(n.cfg.ConnectTimeout); err != nil {
		return fmt.Errorf("nats: subscribe: %w", err)
	}
	if err := conn.nc.LastError(); err != nil {
		return fmt.Errorf("nats: subscribe: %w", err)
	}
	n.c.setConnected(true)
	bo.Reset()
	n.log.get().Info().Str("url", redactURL(n.cfg.URL)).Strs("subjects", n.cfg.Subjects).Msg("nats source subscribed")
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-conn.closed:
		return fmt.Errorf("nats: %w", conn.closedErr())
	}
}

// async handles the library's asynchronous errors.
func (n *NATS) async(sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		n.c.slowConsumer.Add(1)
		if sub != nil {
			n.countLibraryDrops(sub)
		}
		return
	}
	n.c.fail(fmt.Errorf("nats: %w", err))
}

// countLibraryDrops adds the messages the library dropped on sub since the
// last count to Dropped.
func (n *NATS) countLibraryDrops(sub *nats.Subscription) {
	d, err := sub.Dropped()
	if err != nil {
		return
	}
	n.mu.Lock()
	last, ok := n.libDrop[sub]
	delta := d - last
	if ok && delta > 0 {
		n.libDrop[sub] = d
	}
	n.mu.Unlock()
	if !ok {
		return // the session has ended and counted it
	}
	if delta > 0 {
		n.c.dropped.Add(uint64(delta))
	}
}
