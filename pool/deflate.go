package pool

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// permessage-deflate (RFC 7692) on the delivery side.
//
// A data frame is compressed at most once per message and mode, and every
// recipient writes the same compressed bytes:
//
//   - per_message: the frame's payload is deflated on first need by a fresh
//     compressor (no context takeover); the result is cached on the frame
//     and shared by every recipient, snapshot copies included.
//   - shared_stream: connections with the same delivery sequence (same
//     subscription) share one compressor stream with context takeover. The
//     stream turns each message into one derived frame carrying the
//     stream's bytes; members queue that frame. A client inflates a message
//     with the window of the compressed messages before it, so the writer
//     sends a stream frame compressed only if the client received every
//     earlier frame of the stream's current generation, in order; otherwise
//     (joined mid-generation, or a frame was shed or conflated away) it goes
//     uncompressed (RSV1 = 0, which leaves the client's window alone) until
//     the next generation starts. Replies and snapshots go to members
//     uncompressed for the same reason.
//
// Compression runs on the dispatch path (stream frames, under the stream's
// lock) or in a writer before its socket write (per_message cache), never
// across I/O.

// DeflateMode selects how frames are compressed for connections that
// negotiated permessage-deflate.
type DeflateMode string

// Modes.
const (
	DeflatePerMessage   DeflateMode = "per_message"
	DeflateSharedStream DeflateMode = "shared_stream"
)

// DeflateConfig configures permessage-deflate (config key compression).
// The pool applies no defaults: config's (compression.*) fill the zero
// fields, and Validate rejects what is left out of range.
type DeflateConfig struct {
	// Enabled accepts permessage-deflate offers on /ws (the proxy
	// negotiates). Clients that do not offer it are served exactly as
	// without it. Default false.
	Enabled bool `yaml:"enabled"`
	// Mode for connections that negotiated context takeover: per_message
	// (each message compressed once, no context takeover, the bytes shared
	// by every recipient) or shared_stream (connections with the same
	// subscription share one compressor stream with context takeover).
	// Connections that asked for server_no_context_takeover always get
	// per_message.
	Mode DeflateMode `yaml:"mode"`
	// MinSize: payloads shorter than this go uncompressed.
	MinSize int `yaml:"min_size"`
	// Level is the compress/flate level of shared streams, 1 (fastest) to
	// 9 (compress/flate's level 1 matches only within the previous message,
	// which loses most of a stream's gain: config's default is 2).
	Level int `yaml:"level"`
	// MessageLevel is the level of standalone (per_message) compressions,
	// 1 to 9 (level 1, config's default, resets in O(1); higher levels
	// clear 640 KiB of tables for every message).
	MessageLevel int `yaml:"message_level"`
	// MaxStreams bounds shared streams; connections beyond it use
	// per_message.
	MaxStreams int `yaml:"max_streams"`
	// ResetEvery starts a new stream generation after this many compressed
	// frames; connections join a stream at a generation start.
	ResetEvery int `yaml:"reset_every"`
	// ResetInterval starts a new generation once the current one is this
	// old.
	ResetInterval time.Duration `yaml:"reset_interval"`
}

// Validate checks a configuration after defaults.
func (c DeflateConfig) Validate() error {
	var errs []error
	if c.MinSize <= 0 || c.MaxStreams <= 0 || c.ResetEvery <= 0 || c.ResetInterval <= 0 {
		errs = append(errs, fmt.Errorf("min_size (%d), max_streams (%d), reset_every (%d) and reset_interval (%s) must be positive",
			c.MinSize, c.MaxStreams, c.ResetEvery, c.ResetInterval))
	}
	switch c.Mode {
	case DeflatePerMessage, DeflateSharedStream:
	default:
		errs = append(errs, fmt.Errorf("mode %q: want per_message or shared_stream", c.Mode))
	}
	if c.Level < flate.BestSpeed || c.Level > flate.BestCompression {
		errs = append(errs, fmt.Errorf("level %d: want 1 to 9", c.Level))
	}
	if c.MessageLevel < flate.BestSpeed || c.MessageLevel > flate.BestCompression {
		errs = append(errs, fmt.Errorf("message_level %d: want 1 to 9", c.MessageLevel))
	}
	return errors.Join(errs...)
}

// Compression is what a connection negotiated.
type Compression uint8

// Negotiated compression.
const (
	CompressNone Compression = iota
	// CompressPerMessage: server_no_context_takeover was agreed; every
	// compressed message stands alone.
	CompressPerMessage
	// CompressContext: the server may keep context across messages, so
	// the connection may join a shared stream.
	CompressContext
)

// Reasons a data frame or reply went uncompressed to a connection that
// negotiated compression.
type plainReason int

const (
	plainBelowMin plainReason = iota // payload shorter than MinSize
	plainJoining                     // a stream frame before the connection's join point
	plainDiverged                    // the connection missed a frame of its stream's generation
	plainSnapshot                    // a data frame outside the stream, to a synchronised member
	plainReply                       // a protocol reply (welcome, pong, subscribed, error, ...)
	numPlainReasons
)

var plainReasonNames = [numPlainReasons]string{"below_min_size", "joining", "diverged", "snapshot", "reply"}

// deflated caches a frame's per_message compressed payload.
type deflated struct {
	mu   sync.Mutex
	done atomic.Bool
	b    []byte
}

// ShareCompression lets recipients share one per_message compression of f
// (the first writer that needs it compresses, the others reuse its bytes).
// Without it each compressing recipient compresses f on its own. Call before
// f is queued anywhere.
func (f *Frame) ShareCompression() { f.z = new(deflated) }

// streamBytes are a stream frame's compressed payload and its place in the
// stream.
type streamBytes struct {
	s   *stream
	gen uint64 // generation (starts at 1)
	n   uint64 // index in the generation
	b   []byte
}

// streamFrame is a derived frame and its stream bytes in one allocation.
type streamFrame struct {
	f Frame
	z streamBytes
}

// deflateState is a compressing connection's state, guarded by Conn.mu.
type deflateState struct {
	ctx    bool    // context takeover agreed: may be a stream member
	member *stream // stream the connection receives from; nil: per_message
	// The client's inflate window holds generation syncGen of syncS,
	// frames [0, syncNext); syncGen 0: no usable window.
	syncS    *stream
	syncGen  uint64
	syncNext uint64

	// Counters, written by the connection's writer only (no contention
	// between writers), folded into the pool's when the connection goes.
	counts deflateStats
}

// stream is one shared compressor.
type stream struct {
	key  string
	refs int // guarded by streamSet.mu

	mu      sync.Mutex
	w       *flate.Writer
	buf     bytes.Buffer
	gen     uint64
	n       uint64
	genAt   int64
	lastSeq uint64
	last    *Frame
}

// streamSet holds the live streams by key.
type streamSet struct {
	mu sync.Mutex
	m  map[string]*stream
}

// deflateStats are the pool's compression counters.
type deflateStats struct {
	in, out    atomic.Uint64 // payload bytes before / after, data frames to compressing connections
	compressed atomic.Uint64 // frames sent compressed
	plain      [numPlainReasons]atomic.Uint64
	resets     atomic.Uint64
}

// writeDeflate accumulates one write's compression counters (writeBuf).
type writeDeflate struct {
	in, out, compressed uint64
	plain               [numPlainReasons]uint64
	zbuf                bytes.Buffer
}

func (w *writeDeflate) reset() {
	w.in, w.out, w.compressed = 0, 0, 0
	w.plain = [numPlainReasons]uint64{}
	if w.zbuf.Cap() > 256<<10 {
		w.zbuf = bytes.Buffer{}
	}
	w.zbuf.Reset()
}

func (c *Conn) noteDeflate(w *writeDeflate) {
	if c.z == nil {
		return
	}
	z := &c.z.counts
	z.in.Add(w.in)
	z.out.Add(w.out)
	z.compressed.Add(w.compressed)
	for i, n := range w.plain {
		if n > 0 {
			z.plain[i].Add(n)
		}
	}
}

// add moves (from a connection that is going) or copies (for a snapshot)
// o's counters into z.
func (z *deflateStats) add(o *deflateStats, move bool) {
	get := func(v *atomic.Uint64) uint64 {
		if move {
			return v.Swap(0)
		}
		return v.Load()
	}
	z.in.Add(get(&o.in))
	z.out.Add(get(&o.out))
	z.compressed.Add(get(&o.compressed))
	for i := range o.plain {
		z.plain[i].Add(get(&o.plain[i]))
	}
}

// DeflateStats is a snapshot of the compression counters.
type DeflateStats struct {
	Mode string `json:"mode"`
	// BytesIn and BytesOut are the data payload bytes, before and after
	// compression, sent to connections that negotiated compression
	// (uncompressed frames count the same on both sides).
	BytesIn  uint64 `json:"bytesIn"`
	BytesOut uint64 `json:"bytesOut"`
	// Ratio is BytesOut / BytesIn (0 before any).
	Ratio            float64           `json:"ratio"`
	FramesCompressed uint64            `json:"framesCompressed"`
	Uncompressed     map[string]uint64 `json:"uncompressed"`
	StreamsActive    int               `json:"streamsActive"`
	StreamResets     uint64            `json:"streamResets"`
	Connections      int64             `json:"connections"`
}

// DeflateStats returns the compression counters.
func (p *Pool) DeflateStats() DeflateStats {
	var z deflateStats
	z.add(&p.zstats, false)
	for _, c := range p.snapshot() {
		if c.z != nil {
			z.add(&c.z.counts, false)
		}
	}
	s := DeflateStats{
		Mode:             string(p.cfg.Deflate.Mode),
		BytesIn:          z.in.Load(),
		BytesOut:         z.out.Load(),
		FramesCompressed: z.compressed.Load(),
		Uncompressed:     make(map[string]uint64, numPlainReasons),
		StreamResets:     p.zstats.resets.Load(),
		Connections:      p.zconns.Load(),
	}
	if s.BytesIn > 0 {
		s.Ratio = float64(s.BytesOut) / float64(s.BytesIn)
	}
	for i := range z.plain {
		s.Uncompressed[plainReasonNames[i]] = z.plain[i].Load()
	}
	p.streams.mu.Lock()
	s.StreamsActive = len(p.streams.m)
	p.streams.mu.Unlock()
	return s
}

// SetStream puts a compressing connection with context takeover into the
// shared stream of key, the identity of its delivery sequence (same key,
// same messages in the same order); "" leaves any stream. It does nothing
// in per_message mode or for connections that did not negotiate context
// takeover. Beyond MaxStreams the connection uses per_message.
func (c *Conn) SetStream(key string) {
	p := c.p
	if p.cfg.Deflate.Mode != DeflateSharedStream {
		return
	}
	c.mu.Lock()
	z := c.z
	if z == nil || !z.ctx || c.batch || (z.member != nil && z.member.key == key) || (z.member == nil && key == "") {
		c.mu.Unlock()
		return
	}
	old := z.member
	z.member = p.joinStream(key)
	c.mu.Unlock()
	p.leaveStream(old)
}

func (c *Conn) leaveStream() {
	c.mu.Lock()
	var old *stream
	if c.z != nil {
		old, c.z.member = c.z.member, nil
	}
	c.mu.Unlock()
	c.p.leaveStream(old)
	if c.z != nil {
		c.p.zstats.add(&c.z.counts, true)
		c.p.zconns.Add(-1)
	}
}

func (p *Pool) joinStream(key string) *stream {
	if key == "" {
		return nil
	}
	ss := &p.streams
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[key]
	if s == nil {
		if len(ss.m) >= p.cfg.Deflate.MaxStreams {
			return nil
		}
		if ss.m == nil {
			ss.m = make(map[string]*stream)
		}
		s = &stream{key: key}
		ss.m[key] = s
	}
	s.refs++
	return s
}

func (p *Pool) leaveStream(s *stream) {
	if s == nil {
		return
	}
	ss := &p.streams
	ss.mu.Lock()
	s.refs--
	gone := s.refs == 0
	if gone {
		delete(ss.m, s.key)
	}
	ss.mu.Unlock()
	if gone {
		s.mu.Lock()
		if s.w != nil {
			writers(p.cfg.Deflate.Level).Put(s.w)
			s.w = nil
		}
		s.mu.Unlock()
	}
}

// streamFrameLocked returns the frame a stream member queues for f: the
// stream's derived frame, or f itself when it goes uncompressed anyway.
// Called by Enqueue under c.mu.
func (c *Conn) streamFrameLocked(f *Frame, seq uint64) *Frame {
	s := c.z.member
	if s == nil || seq == 0 {
		return f
	}
	cfg := &c.p.cfg.Deflate
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == s.lastSeq && s.last != nil {
		return s.last
	}
	s.lastSeq = seq
	if len(f.Data) < cfg.MinSize {
		s.last = f
		return f
	}
	now := time.Now().UnixNano()
	if s.w == nil || s.n >= uint64(cfg.ResetEvery) || now-s.genAt >= int64(cfg.ResetInterval) {
		if s.w == nil {
			s.w = writers(cfg.Level).Get().(*flate.Writer)
		}
		s.w.Reset(&s.buf)
		s.gen++
		s.n = 0
		s.genAt = now
		c.p.zstats.resets.Add(1)
	}
	s.buf.Reset()
	_, _ = s.w.Write(f.Data)
	_ = s.w.Flush()
	sf := &streamFrame{f: *f}
	sf.z = streamBytes{s: s, gen: s.gen, n: s.n, b: trimTail(bytes.Clone(s.buf.Bytes()))}
	sf.f.zs = &sf.z
	sf.f.z = nil
	s.n++
	s.last = &sf.f
	return s.last
}

// trimTail removes the 00 00 ff ff that ends a sync flush (RFC 7692 7.2.1).
func trimTail(b []byte) []byte {
	if n := len(b); n >= 4 && b[n-4] == 0 && b[n-3] == 0 && b[n-2] == 0xff && b[n-1] == 0xff {
		return b[:n-4]
	}
	return b
}

var writerPools [flate.BestCompression + 1]sync.Pool

func writers(level int) *sync.Pool {
	return &writerPools[level]
}

func init() {
	for l := flate.BestSpeed; l <= flate.BestCompression; l++ {
		writerPools[l].New = func() any {
			w, _ := flate.NewWriter(nil, l)
			return w
		}
	}
}

// compressAppend appends the per_message compression of data to dst.
func compressAppend(dst *bytes.Buffer, data []byte, level int) {
	wp := writers(level)
	w := wp.Get().(*flate.Writer)
	w.Reset(dst)
	_, _ = w.Write(data)
	_ = w.Flush()
	wp.Put(w)
	dst.Truncate(len(trimTail(dst.Bytes())))
}

func (d *deflated) get(data []byte, level int) []byte {
	if d.done.Load() {
		return d.b
	}
	d.mu.Lock()
	if !d.done.Load() {
		var b bytes.Buffer
		b.Grow(len(data)/2 + 16)
		compressAppend(&b, data, level)
		d.b = b.Bytes()
		d.done.Store(true)
	}
	d.mu.Unlock()
	return d.b
}

// appendHeaderCompressed is appendHeader with RSV1 set.
func appendHeaderCompressed(b []byte, op Op, n int) []byte {
	start := len(b)
	b = appendHeader(b, op, n)
	b[start] |= 0x40
	return b
}

// appendFrameLocked appends f to wb as one WebSocket frame, compressed when
// the connection negotiated it and the rules above allow.
func (c *Conn) appendFrameLocked(wb *writeBuf, f *Frame) {
	z := c.z
	if z == nil || f.Op != OpText {
		wb.b = appendHeader(wb.b, f.Op, len(f.Data))
		wb.b = append(wb.b, f.Data...)
		return
	}
	wd := &wb.z
	if !f.IsData() {
		wd.plain[plainReply]++
		c.appendPlain(wb, f.Data)
		return
	}
	wd.in += uint64(len(f.Data))
	cfg := &c.p.cfg.Deflate
	if sb := f.zs; sb != nil {
		switch {
		case sb.n == 0:
			z.syncS, z.syncGen, z.syncNext = sb.s, sb.gen, 1
		case z.syncS == sb.s && z.syncGen == sb.gen && z.syncNext == sb.n:
			z.syncNext++
		default:
			r := plainJoining
			if z.syncS == sb.s {
				r = plainDiverged
			}
			z.syncGen = 0
			wd.plain[r]++
			wd.out += uint64(len(f.Data))
			c.appendPlain(wb, f.Data)
			return
		}
		c.appendCompressed(wb, sb.b)
		return
	}
	if len(f.Data) < cfg.MinSize {
		wd.plain[plainBelowMin]++
		wd.out += uint64(len(f.Data))
		c.appendPlain(wb, f.Data)
		return
	}
	if z.member != nil {
		// A member whose window is in use takes frames from outside the
		// stream uncompressed; one still joining could take them
		// compressed, but then joins with the stream's next generation
		// just the same, so it is kept simple.
		wd.plain[plainSnapshot]++
		wd.out += uint64(len(f.Data))
		c.appendPlain(wb, f.Data)
		return
	}
	z.syncGen = 0 // a standalone compressed message replaces the window
	if f.z != nil {
		c.appendCompressed(wb, f.z.get(f.Data, cfg.MessageLevel))
		return
	}
	wd.zbuf.Reset()
	compressAppend(&wd.zbuf, f.Data, cfg.MessageLevel)
	c.appendCompressed(wb, wd.zbuf.Bytes())
}

func (c *Conn) appendPlain(wb *writeBuf, data []byte) {
	wb.b = appendHeader(wb.b, OpText, len(data))
	wb.b = append(wb.b, data...)
}

func (c *Conn) appendCompressed(wb *writeBuf, b []byte) {
	wb.z.out += uint64(len(b))
	wb.z.compressed++
	wb.b = appendHeaderCompressed(wb.b, OpText, len(b))
	wb.b = append(wb.b, b...)
}

// appendEnvelopeLocked appends a batch envelope (wb.scratch), compressed per
// batch for a compressing connection.
func (c *Conn) appendEnvelopeLocked(wb *writeBuf) {
	z := c.z
	if z == nil {
		c.appendPlain(wb, wb.scratch)
		return
	}
	wd := &wb.z
	wd.in += uint64(len(wb.scratch))
	if len(wb.scratch) < c.p.cfg.Deflate.MinSize {
		wd.plain[plainBelowMin]++
		wd.out += uint64(len(wb.scratch))
		c.appendPlain(wb, wb.scratch)
		return
	}
	z.syncGen = 0
	wd.zbuf.Reset()
	compressAppend(&wd.zbuf, wb.scratch, c.p.cfg.Deflate.MessageLevel)
	c.appendCompressed(wb, wd.zbuf.Bytes())
}
