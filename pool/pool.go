package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Config bounds queues and paces writers. The pool applies no defaults:
// config.Config.PoolConfig gives the configuration's (defaults applied
// there), and New rejects a Config whose bounds or timeouts are not
// positive.
type Config struct {
	// QueueMaxMessages bounds one connection's queued data frames. > 0.
	QueueMaxMessages int
	// QueueMaxBytes bounds one connection's queued data bytes. > 0.
	QueueMaxBytes int
	// BatchMaxMessages is how many frames one write (one syscall) carries at
	// most. > 0.
	BatchMaxMessages int
	// FlushInterval, when > 0, holds data frames for up to this long so that
	// they go out together; a batch of BatchMaxMessages goes at once. 0: write
	// as soon as the writer is idle (latency first).
	FlushInterval time.Duration
	// InlineWrites lets the goroutine that queues a data frame for a
	// connection with no writer running make the writer's first write
	// itself, without blocking (inline.go); a writer goroutine starts only
	// for what that write could not take.
	InlineWrites bool
	// WriteTimeout is the deadline of every socket write. > 0.
	WriteTimeout time.Duration
	// HeartbeatInterval is how often a WebSocket ping is sent. > 0.
	HeartbeatInterval time.Duration
	// ConnectionTimeout closes a connection with no inbound activity (any
	// frame, pong included) for this long. > 0.
	ConnectionTimeout time.Duration
	// CloseGrace is how long a connection waits for the client's close reply
	// after the server sent its close frame. > 0.
	CloseGrace time.Duration
	// BatchMaxBytes caps the data bytes one write carries (a single larger
	// frame still goes alone), so that a writer blocked on a stalled client
	// pins a bounded buffer. > 0.
	BatchMaxBytes int
	// SlowConsumerMaxLag closes, with 1008 "Slow consumer", a connection whose
	// queue has stayed saturated (found full by an enqueue and not drained
	// since) this long. > 0.
	SlowConsumerMaxLag time.Duration
	// Deflate configures permessage-deflate (see DeflateConfig).
	Deflate DeflateConfig
	// Memory configures the memory monitor (see MemoryConfig).
	Memory MemoryConfig
	// Log receives memory level transitions and slow-consumer closes. Zero
	// value: nothing is logged.
	Log zerolog.Logger
}

// Validate reports the fields New cannot run with, by name.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"QueueMaxMessages", int64(c.QueueMaxMessages)},
		{"QueueMaxBytes", int64(c.QueueMaxBytes)},
		{"BatchMaxMessages", int64(c.BatchMaxMessages)},
		{"BatchMaxBytes", int64(c.BatchMaxBytes)},
		{"WriteTimeout", int64(c.WriteTimeout)},
		{"HeartbeatInterval", int64(c.HeartbeatInterval)},
		{"ConnectionTimeout", int64(c.ConnectionTimeout)},
		{"CloseGrace", int64(c.CloseGrace)},
		{"SlowConsumerMaxLag", int64(c.SlowConsumerMaxLag)},
	} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", f.name))
		}
	}
	if c.FlushInterval < 0 {
		errs = append(errs, errors.New("FlushInterval must not be negative"))
	}
	if err := c.Memory.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("Memory: %w", err))
	}
	if err := c.Deflate.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("Deflate: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// ErrInvalidConfig wraps what Validate (and so New) finds wrong with a
// Config.
var ErrInvalidConfig = errors.New("pool: invalid config")

// Reason says why a frame was shed.
type Reason int

// Shedding reasons. Every shed frame is counted under exactly one.
const (
	ReasonQueueFull Reason = iota // oldest data frame dropped for a newer one
	ReasonTooLarge                // a frame larger than the whole queue bound
	ReasonClosed                  // frames still queued when the connection died

	// ReasonConflated: a queued latest-wins frame was replaced by a newer
	// one of the same key.
	ReasonConflated
	// ReasonSlowConsumer: frames still queued when a slow consumer was
	// closed.
	ReasonSlowConsumer
	// ReasonMemory: dropped from a saturated connection under critical
	// memory pressure.
	ReasonMemory
	numReasons
)

var reasonNames = [numReasons]string{"queue_full", "too_large", "connection_closed", "conflated", "slow_consumer", "memory_critical"}

func (r Reason) String() string { return reasonNames[r] }

// Observer receives delivery events; used for latency histograms. It must be
// cheap and safe for concurrent use.
type Observer interface {
	ObserveDelivery(latency time.Duration)
}

// Pool owns the live connections. Safe for concurrent use.
type Pool struct {
	cfg      Config
	observer Observer
	log      zerolog.Logger
	mem      memoryMonitor

	mu    sync.Mutex
	conns map[*Conn]struct{}
	byID  map[string]*Conn // connections with a non-empty id, for Lookup

	total        atomic.Uint64
	active       atomic.Int64
	errorConns   atomic.Uint64
	msgsSent     atomic.Uint64
	inlineWrites atomic.Uint64 // whole writes made by the queueing goroutine (inline.go)
	inlineHanded atomic.Uint64 // inline writes the socket took only part of, finished by a writer
	bytesSent    atomic.Uint64
	latencySum   atomic.Int64
	latencyCount atomic.Uint64
	queuedBytes  atomic.Int64
	queuedFrames atomic.Int64
	durationSum  atomic.Int64 // ms, of closed connections
	closedCount  atomic.Uint64
	shed         [numReasons]atomic.Uint64
	slowClosed   atomic.Uint64
	slowLog      rateLimit
	// closeWaitUntil (unix ns) extends CloseGrace for close frames written
	// from then on (WaitCloseUntil).
	closeWaitUntil atomic.Int64

	// errorConns by cause (writefail.go)
	writeResets, writeTimeouts, writeServer atomic.Uint64

	bufs sync.Pool

	zstats  deflateStats // deflate.go
	streams streamSet
	zconns  atomic.Int64
}

// New returns a pool, or an error wrapping ErrInvalidConfig when cfg fails
// Validate.
func New(cfg Config, obs Observer) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, observer: obs, log: cfg.Log, conns: make(map[*Conn]struct{}), byID: make(map[string]*Conn)}
	p.mem.init(&p.cfg.Memory)
	p.bufs.New = func() any { return &writeBuf{b: make([]byte, 0, 4096)} }
	return p, nil
}

// Config returns the configuration the pool was built with.
func (p *Pool) Config() Config { return p.cfg }

// ConnOptions describe a new connection.
type ConnOptions struct {
	ID     string
	Remote string
	// Batch selects the opt-in batch envelope (/ws?batch=1).
	Batch bool
	// Hold queues frames without writing until Conn.Start, so that a
	// greeting can be queued first and subscriptions registered before the
	// client sees it.
	Hold bool
	// Compression is what the connection negotiated (permessage-deflate).
	Compression Compression
}

// Add registers a connection whose handshake is complete. The caller keeps
// reading from nc and must call Remove when its read loop ends.
func (p *Pool) Add(nc net.Conn, opts ConnOptions) *Conn {
	c := &Conn{p: p, nc: nc, id: opts.ID, remote: opts.Remote, batch: opts.Batch, st: stateOpen, connectedAt: time.Now()}
	if opts.Hold {
		c.st = stateHeld
	}
	c.writeFn = c.writeLoop
	if tw, ok := nc.(TryWriter); ok && p.cfg.InlineWrites {
		c.tw = tw
	}
	if opts.Compression != CompressNone {
		c.z = &deflateState{ctx: opts.Compression == CompressContext}
		p.zconns.Add(1)
	}
	c.lastActivity.Store(c.connectedAt.UnixNano())
	// A connection's first ping comes between half an interval and an
	// interval after it connected, at random, and its later ones keep
	// that phase: connections opened together (a reconnect storm, a
	// deploy) are not all pinged, and do not all answer, in the same
	// heartbeat tick.
	c.lastPing = c.connectedAt.UnixNano() - rand.Int64N(max(p.cfg.HeartbeatInterval.Nanoseconds()/2, 1))
	p.mu.Lock()
	p.conns[c] = struct{}{}
	if c.id != "" {
		p.byID[c.id] = c
	}
	p.mu.Unlock()
	p.total.Add(1)
	p.active.Add(1)
	return c
}

// Remove ends c after its reader has stopped: it lets a write in flight (a
// close reply, typically) finish for a short while, releases the queue and
// closes the socket.
func (p *Pool) Remove(c *Conn) {
	p.mu.Lock()
	_, ok := p.conns[c]
	delete(p.conns, c)
	if p.byID[c.id] == c {
		delete(p.byID, c.id)
	}
	p.mu.Unlock()
	if !ok {
		return
	}
	c.leaveStream()
	c.release()
	p.active.Add(-1)
	p.closedCount.Add(1)
	p.durationSum.Add(time.Since(c.connectedAt).Milliseconds())
}

// QueuedFrames returns the data frames queued over all connections.
func (p *Pool) QueuedFrames() int64 { return p.queuedFrames.Load() }

// Lookup returns the live connection with the given id (ConnOptions.ID).
func (p *Pool) Lookup(id string) (*Conn, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.byID[id]
	return c, ok
}

// Len returns the number of live connections.
func (p *Pool) Len() int { return int(p.active.Load()) }

// Each calls fn for a snapshot of the live connections.
func (p *Pool) Each(fn func(*Conn)) {
	for _, c := range p.snapshot() {
		fn(c)
	}
}

func (p *Pool) snapshot() []*Conn {
	p.mu.Lock()
	cs := make([]*Conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	return cs
}

// FlushResult reports what a flush started writing.
type FlushResult struct {
	Connections int `json:"flushedConnections"`
	Messages    int `json:"flushedMessages"`
}

// FlushAll starts a write of every pending frame on every connection now,
// ignoring FlushInterval.
func (p *Pool) FlushAll() FlushResult {
	var r FlushResult
	for _, c := range p.snapshot() {
		if n := c.flush(); n > 0 {
			r.Connections++
			r.Messages += n
		}
	}
	return r
}

// WaitCloseUntil lets every connection whose close frame is written from now
// on wait for the client's close reply until t, when that is later than
// CloseGrace after the write. Shutdown uses it: a client seconds behind its
// socket (a saturated feed) still reads its backlog, answers and receives
// the close code, instead of meeting a closed socket whose reset destroys
// the close frame it has not read yet.
func (p *Pool) WaitCloseUntil(t time.Time) { p.closeWaitUntil.Store(t.UnixNano()) }

// CloseAll closes every connection gracefully: queued frames are written,
// then a close frame with code and reason. It returns when every connection
// is gone or ctx ends; connections left then are closed hard.
func (p *Pool) CloseAll(ctx context.Context, code int, reason string) {
	for _, c := range p.snapshot() {
		c.Close(code, reason)
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for p.Len() > 0 {
		select {
		case <-ctx.Done():
			for _, c := range p.snapshot() {
				c.abort()
			}
			return
		case <-t.C:
		}
	}
}

// Run drives heartbeats, idle timeouts and, when FlushInterval > 0, timed
// flushes, until ctx ends. One goroutine serves every connection, so idle
// connections cost no timer of their own.
func (p *Pool) Run(ctx context.Context) {
	tick := min(p.cfg.HeartbeatInterval, p.cfg.ConnectionTimeout, p.cfg.SlowConsumerMaxLag) / 4
	tick = max(tick, 10*time.Millisecond)
	hb := time.NewTicker(tick)
	defer hb.Stop()
	var flushC <-chan time.Time
	if p.cfg.FlushInterval > 0 {
		ft := time.NewTicker(p.cfg.FlushInterval)
		defer ft.Stop()
		flushC = ft.C
	}
	var memC <-chan time.Time
	if p.cfg.Memory.Threshold > 0 {
		mt := time.NewTicker(p.cfg.Memory.SampleInterval)
		defer mt.Stop()
		memC = mt.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-memC:
			p.sampleMemory()
		case <-flushC:
			p.FlushAll()
		case now := <-hb.C:
			p.heartbeat(now.UnixNano())
		}
	}
}

func (p *Pool) heartbeat(now int64) {
	timeout := p.cfg.ConnectionTimeout.Nanoseconds()
	interval := p.cfg.HeartbeatInterval.Nanoseconds()
	for _, c := range p.snapshot() {
		if now-c.lastActivity.Load() > timeout {
			c.abort()
			continue
		}
		if p.policeSlow(c, now) {
			continue
		}
		c.mu.Lock()
		due := now-c.lastPing >= interval
		if due {
			c.lastPing = now
		}
		c.mu.Unlock()
		if due {
			c.Send(pingFrame)
		}
	}
}

// Stats is a snapshot of the pool's counters.
type Stats struct {
	TotalConnections  uint64            `json:"totalConnections"`
	ActiveConnections int64             `json:"activeConnections"`
	ErrorConnections  uint64            `json:"errorConnections"`
	MessagesSent      uint64            `json:"totalMessagesSent"`
	BytesSent         uint64            `json:"totalBytesSent"`
	AvgLatencyMs      float64           `json:"averageLatency"`
	QueuedFrames      int64             `json:"queuedFrames"`
	QueuedBytes       int64             `json:"queuedBytes"`
	AvgDurationMs     float64           `json:"averageConnectionDuration"`
	ClosedConnections uint64            `json:"closedConnections"`
	Shed              map[string]uint64 `json:"shed"`
	// SlowConsumerCloses counts connections closed with 1008 "Slow consumer".
	SlowConsumerCloses uint64      `json:"slowConsumerCloses"`
	Memory             MemoryStats `json:"memory"`

	// ErrorConnections by cause: the client reset or closed the connection
	// under a write, the client stopped reading past the write deadline, or
	// the server failed (anything else). Only the last is a server failure.
	ClientResets      uint64 `json:"clientResets"`
	WriteTimeouts     uint64 `json:"writeTimeouts"`
	ServerWriteErrors uint64 `json:"serverWriteErrors"`
}

// Stats returns current counters.
func (p *Pool) Stats() Stats {
	s := Stats{
		TotalConnections:  p.total.Load(),
		ActiveConnections: p.active.Load(),
		ErrorConnections:  p.errorConns.Load(),
		MessagesSent:      p.msgsSent.Load(),
		BytesSent:         p.bytesSent.Load(),
		QueuedFrames:      p.queuedFrames.Load(),
		QueuedBytes:       p.queuedBytes.Load(),
		ClosedConnections: p.closedCount.Load(),
		Shed:              make(map[string]uint64, numReasons),
	}
	s.SlowConsumerCloses, s.Memory = p.slowClosed.Load(), p.MemoryStats()
	s.ClientResets, s.WriteTimeouts, s.ServerWriteErrors = p.writeResets.Load(), p.writeTimeouts.Load(), p.writeServer.Load()
	if n := p.latencyCount.Load(); n > 0 {
		s.AvgLatencyMs = float64(p.latencySum.Load()) / float64(n) / 1e6
	}
	if n := s.ClosedConnections; n > 0 {
		s.AvgDurationMs = float64(p.durationSum.Load()) / float64(n)
	}
	for i := range p.shed {
		s.Shed[Reason(i).String()] = p.shed[i].Load()
	}
	return s
}

// ShedTotal returns how many frames were shed for reason r.
func (p *Pool) ShedTotal(r Reason) uint64 { return p.shed[r].Load() }

// writeBuf is a pooled write buffer; ingest keeps the data frames' ingest
// times of the batch being written, for latency.
type writeBuf struct {
	b       []byte
	scratch []byte
	msgs    [][]byte
	ingest  []int64
	z       writeDeflate // deflate.go
}

func (p *Pool) getBuf() *writeBuf { return p.bufs.Get().(*writeBuf) }

func (p *Pool) putBuf(w *writeBuf) {
	if cap(w.b) > 4<<20 {
		return // let an oversized buffer go rather than pin it
	}
	w.b, w.scratch, w.ingest = w.b[:0], w.scratch[:0], w.ingest[:0]
	w.z.reset()
	clear(w.msgs)
	w.msgs = w.msgs[:0]
	p.bufs.Put(w)
}
