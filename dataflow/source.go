package dataflow

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Sink receives validated messages from sources. Deliver must not block: a
// sink that cannot keep up counts and drops, so that a slow proxy never stalls
// a source's read loop. md is owned by the sink after the call.
type Sink interface {
	Deliver(md *MarketData) bool
}

// Source is one feed of MarketData (demo, in-process, Redis, NATS,
// JetStream, HTTP ingest).
// Run blocks until ctx is cancelled, reconnecting on its own when its
// transport fails; it returns nil on cancellation.
type Source interface {
	Name() string
	Run(ctx context.Context, sink Sink) error
	Stats() SourceStatus
}

// Logged is implemented by sources that log events worth an operator's
// attention (connection changes, lost ranges). The proxy calls SetLogger
// once, before Run.
type Logged interface {
	SetLogger(log zerolog.Logger)
}

// SourceStatus is a point-in-time snapshot of a source, for stats and health.
type SourceStatus struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	Connected    bool   `json:"connected"`
	Received     uint64 `json:"received"`
	Rejected     uint64 `json:"rejected"`
	Dropped      uint64 `json:"dropped"`
	LastError    string `json:"lastError,omitempty"`
	LastErrorAt  int64  `json:"lastErrorAt,omitempty"`
	LastActivity int64  `json:"lastActivity"`
	Since        int64  `json:"since"`
	// LastReject is why the most recent message was rejected (bad input is
	// not a source failure, so it does not touch LastError).
	LastReject string `json:"lastReject,omitempty"`
	// SlowConsumer counts the client library's slow-consumer events (its
	// pending buffer overflowed; the messages it dropped are in Dropped).
	// NATS and JetStream only.
	SlowConsumer uint64 `json:"slowConsumer,omitempty"`
	// Gaps counts the times messages were lost before the source could read
	// them (a stream trimmed past its position); LastGap says which. Sources
	// without history never report a gap.
	Gaps    uint64 `json:"gaps,omitempty"`
	LastGap string `json:"lastGap,omitempty"`
	// Sequence is the last stream sequence delivered (JetStream only).
	Sequence uint64 `json:"sequence,omitempty"`
}

// counters is the bookkeeping shared by every source implementation. It is
// safe for concurrent use.
type counters struct {
	name, typ    string
	connected    atomic.Bool
	received     atomic.Uint64
	rejected     atomic.Uint64
	dropped      atomic.Uint64
	lastActivity atomic.Int64
	since        atomic.Int64
	slowConsumer atomic.Uint64
	gaps         atomic.Uint64
	sequence     atomic.Uint64

	mu          sync.Mutex
	lastError   string
	lastErrorAt int64
	lastReject  string
	lastGap     string
}

func (c *counters) setConnected(on bool) {
	if c.connected.Swap(on) != on {
		c.since.Store(time.Now().UnixMilli())
	}
}

func (c *counters) fail(err error) {
	c.mu.Lock()
	c.lastError = err.Error()
	c.lastErrorAt = time.Now().UnixMilli()
	c.mu.Unlock()
}

// reject counts a message that failed validation and remembers why.
func (c *counters) reject(err error) {
	c.rejected.Add(1)
	c.mu.Lock()
	c.lastReject = err.Error()
	c.mu.Unlock()
}

// gap counts messages lost before the source could read them.
func (c *counters) gap(what string) {
	c.gaps.Add(1)
	c.mu.Lock()
	c.lastGap = what
	c.mu.Unlock()
}

// deliver stamps md, hands it to sink and counts the outcome.
func (c *counters) deliver(sink Sink, md *MarketData) {
	now := time.Now()
	if md.ReceivedAt == 0 {
		md.ReceivedAt = now.UnixMilli()
	}
	c.received.Add(1)
	c.lastActivity.Store(now.UnixMilli())
	if !sink.Deliver(md) {
		c.dropped.Add(1)
	}
}

func (c *counters) status() SourceStatus {
	c.mu.Lock()
	le, lea, lr, lg := c.lastError, c.lastErrorAt, c.lastReject, c.lastGap
	c.mu.Unlock()
	return SourceStatus{
		Name: c.name, Type: c.typ,
		Connected:    c.connected.Load(),
		Received:     c.received.Load(),
		Rejected:     c.rejected.Load(),
		Dropped:      c.dropped.Load(),
		LastError:    le,
		LastErrorAt:  lea,
		LastActivity: c.lastActivity.Load(),
		Since:        c.since.Load(),
		LastReject:   lr,
		SlowConsumer: c.slowConsumer.Load(),
		Gaps:         c.gaps.Load(),
		LastGap:      lg,
		Sequence:     c.sequence.Load(),
	}
}

// attachment is the sink of a push source (in-process, HTTP ingest): the
// producer calls in whenever it likes, and messages can only be delivered
// while the proxy runs the source. Safe for concurrent use.
type attachment struct {
	mu   sync.RWMutex
	sink Sink
}

// run attaches sink until ctx ends, reporting the source connected meanwhile.
func (a *attachment) run(ctx context.Context, c *counters, sink Sink) {
	a.mu.Lock()
	a.sink = sink
	a.mu.Unlock()
	c.setConnected(true)
	<-ctx.Done()
	c.setConnected(false)
	a.mu.Lock()
	a.sink = nil
	a.mu.Unlock()
}

// get returns the attached sink, nil when the source is not running.
func (a *attachment) get() Sink {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.sink
}
