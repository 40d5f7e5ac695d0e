package compare

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Side names one of the two streams.
type Side int

// The two sides of a comparison.
const (
	Legacy Side = iota
	Proxy
)

func (s Side) String() string {
	if s == Legacy {
		return "legacy"
	}
	return "proxy"
}

func (s Side) other() Side { return 1 - s }

// maxSkewSamples bounds the memory of the skew distribution: beyond it a
// uniform reservoir sample is kept, so percentiles stay representative.
const maxSkewSamples = 100_000

// Key identifies a data message up to its payload.
type Key struct {
	Type      string `json:"type"`
	Exchange  string `json:"exchange"`
	Symbol    string `json:"symbol"`
	Timestamp int64  `json:"timestamp"`
	// TimestampText is payload.timestamp as sent when it is not an integer
	// (a fraction, an ISO string), which the pipeline may produce.
	TimestampText string `json:"timestampText,omitempty"`
}

// entry is one message waiting for its counterpart.
type entry struct {
	side    Side
	raw     []byte // payload as received
	canon   []byte // canonical payload, computed when first needed
	at      time.Time
	counted bool // first arrival inside the window
}

// canonical returns the canonical form of the payload, computing it once.
// Payloads are validated JSON, so this cannot fail; should it, the raw
// bytes stand in.
func (e *entry) canonical() []byte {
	if e.canon == nil {
		c, err := canonical(e.raw)
		if err != nil {
			c = e.raw
		}
		e.canon = c
	}
	return e.canon
}

// same reports whether a and b carry the same payload: byte-identical (the
// common case, wsproxy passes data through untouched) or equal once
// canonical (key order, whitespace).
func same(a, b *entry) bool {
	return bytes.Equal(a.raw, b.raw) || bytes.Equal(a.canonical(), b.canonical())
}

// Matcher pairs the data messages of the two sides. It is safe for
// concurrent use: each side's reader calls Observe in arrival order.
type Matcher struct {
	sub      Subscription
	maxDiffs int

	mu       sync.Mutex
	start    time.Time // window opening; zero until set
	end      time.Time // window closing; zero while open
	pending  map[Key][]*entry
	inWindow int // pending entries with counted set
	// arriving holds, per side, the arrival time Arrive gave the frame its
	// reader has not passed to Observe yet (zero when none): such a frame
	// counts as pending, so that the window cannot be judged complete
	// between a frame's arrival and its record.
	arriving  [2]time.Time
	reached   chan struct{}
	isReached bool
	count     int
	sides     [2]SideStats
	types     map[string]*TypeStats
	matched   int
	outFilter int
	skews     []float64
	skewSeen  int
	malformed []string
	control   [2]map[string]*controlSeen
}

// NewMatcher returns a matcher for streams subscribed with sub. count > 0
// makes Reached fire once either side has count data messages in the
// window; maxDiffs bounds the examples kept for the report.
func NewMatcher(sub Subscription, count, maxDiffs int) *Matcher {
	return &Matcher{
		sub:      sub,
		maxDiffs: maxDiffs,
		pending:  make(map[Key][]*entry),
		reached:  make(chan struct{}),
		count:    count,
		types:    make(map[string]*TypeStats),
	}
}

// Reached is closed once the message count of the window is reached.
func (m *Matcher) Reached() <-chan struct{} { return m.reached }

// Open opens the window at t. Messages whose first arrival is before t are
// warm-up and never count.
func (m *Matcher) Open(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.start = t
	m.inWindow = 0
	for _, es := range m.pending {
		for _, e := range es {
			e.counted = m.inWindowLocked(e.at)
			if e.counted {
				m.inWindow++
			}
		}
	}
}

// Close closes the window at t: messages first seen after t no longer
// count, but may still complete a pair opened inside the window.
func (m *Matcher) Close(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.end.IsZero() {
		m.end = t
	}
}

// Pending returns how many in-window messages still wait for their
// counterpart, counting a frame that arrived inside the window (Arrive) and
// is not recorded yet (Observe).
func (m *Matcher) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.inWindow
	for _, at := range m.arriving {
		if !at.IsZero() && m.inWindowLocked(at) {
			n++
		}
	}
	return n
}

// Arrive stamps the arrival of a frame side's reader has just read and
// returns the time to pass to Observe. Until that Observe, the frame counts
// in Pending when its arrival is inside the window: a window closed between
// the two still waits for it, and for its counterpart. Each side has one
// reader, so at most one frame per side is between the two.
func (m *Matcher) Arrive(side Side) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	at := time.Now()
	m.arriving[side] = at
	return at
}

// observed ends side's arrival at once Observe has recorded its frame.
func (m *Matcher) observed(side Side, at time.Time) {
	m.mu.Lock()
	if m.arriving[side].Equal(at) {
		m.arriving[side] = time.Time{}
	}
	m.mu.Unlock()
}

func (m *Matcher) inWindowLocked(at time.Time) bool {
	return !m.start.IsZero() && !at.Before(m.start) && (m.end.IsZero() || !at.After(m.end))
}

// dataMessage is the legacy data envelope.
type dataMessage struct {
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	Timestamp json.RawMessage `json:"timestamp"`
}

type dataPayload struct {
	Type      *string         `json:"type"`
	Exchange  *string         `json:"exchange"`
	Symbol    *string         `json:"symbol"`
	Timestamp json.RawMessage `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// controlTypes are the server messages that are not market data.
var controlTypes = map[string]bool{
	"welcome": true, "pong": true, "subscribed": true, "unsubscribed": true,
	"stats": true, "error": true,
}

// Observe records one frame received by side at time at. It returns the
// message type ("" when the frame is not a JSON object with a string type).
// at is the frame's arrival: the time Arrive returned, or any time for a
// frame not announced by Arrive.
func (m *Matcher) Observe(side Side, frame []byte, at time.Time) string {
	defer m.observed(side, at)
	var env dataMessage
	if err := json.Unmarshal(frame, &env); err != nil || env.Type == "" {
		m.addMalformed(side, at, "not a JSON object with a type", frame)
		return ""
	}
	if controlTypes[env.Type] {
		m.mu.Lock()
		m.sides[side].Control++
		m.observeControlLocked(side, env.Type, frame)
		m.mu.Unlock()
		return env.Type
	}
	if env.Type == "batch" {
		m.addMalformed(side, at, "batch envelope sent to a client that did not ask for it", frame)
		return env.Type
	}
	// Exchange, symbol and data may be absent: the legacy server forwarded
	// what the pipeline gave.
	var p dataPayload
	if len(env.Payload) == 0 || json.Unmarshal(env.Payload, &p) != nil || p.Type == nil || len(p.Timestamp) == 0 {
		m.addMalformed(side, at, "data message without payload {type,timestamp}", frame)
		return env.Type
	}
	if *p.Type != env.Type || !isNumber(env.Timestamp) {
		m.addMalformed(side, at, "data envelope differs from the legacy shape (type or timestamp)", frame)
		return env.Type
	}
	k := Key{Type: *p.Type}
	if p.Exchange != nil {
		k.Exchange = *p.Exchange
	}
	if p.Symbol != nil {
		k.Symbol = *p.Symbol
	}
	var n json.Number
	if err := json.Unmarshal(p.Timestamp, &n); err == nil {
		if i, err := n.Int64(); err == nil {
			k.Timestamp = i
		} else {
			k.TimestampText = n.String()
		}
	} else {
		k.TimestampText = string(p.Timestamp)
	}
	m.observeData(k, &entry{side: side, raw: env.Payload, at: at})
	return env.Type
}

func (m *Matcher) observeData(k Key, n *entry) {
	side, at := n.side, n.at
	m.mu.Lock()
	defer m.mu.Unlock()
	counted := m.inWindowLocked(at)
	if !m.sub.Matches(k.Exchange, k.Type, k.Symbol) {
		switch {
		case !counted:
			// Before the subscription took effect wsproxy sends everything.
			m.sides[side].WarmUp++
		case side == Proxy:
			m.outFilter++
			m.typeLocked(k.Type).OutOfFilter++
			m.sides[side].OutsideFilter++
		default:
			m.sides[side].OutsideFilter++
		}
		return
	}
	if counted {
		m.sides[side].Data++
		m.typeLocked(k.Type).count(side)
		if m.count > 0 && m.sides[side].Data >= m.count && !m.isReached {
			m.isReached = true
			close(m.reached)
		}
	}
	es := m.pending[k]
	for i, e := range es {
		if e.side == side.other() && same(e, n) {
			m.pending[k] = append(es[:i:i], es[i+1:]...)
			if len(m.pending[k]) == 0 {
				delete(m.pending, k)
			}
			if !e.counted {
				m.sides[side].WarmUp++ // the pair started before the window
				return
			}
			m.inWindow--
			m.matched++
			m.typeLocked(k.Type).Matched++
			skew := at.Sub(e.at)
			if side == Legacy {
				skew = -skew
			}
			m.addSkewLocked(float64(skew) / float64(time.Millisecond))
			return
		}
	}
	if !counted {
		if !m.end.IsZero() && at.After(m.end) {
			m.sides[side].AfterWindow++
			return
		}
		m.sides[side].WarmUp++
	} else {
		m.inWindow++
	}
	n.counted = counted
	m.pending[k] = append(es, n)
}

// addSkewLocked keeps every sample up to maxSkewSamples, then a uniform
// reservoir of them.
func (m *Matcher) addSkewLocked(ms float64) {
	m.skewSeen++
	if len(m.skews) < maxSkewSamples {
		m.skews = append(m.skews, ms)
		return
	}
	if j := rand.IntN(m.skewSeen); j < maxSkewSamples {
		m.skews[j] = ms
	}
}

func (m *Matcher) typeLocked(t string) *TypeStats {
	ts := m.types[t]
	if ts == nil {
		ts = &TypeStats{}
		m.types[t] = ts
	}
	return ts
}

func (m *Matcher) addMalformed(side Side, at time.Time, why string, frame []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.inWindowLocked(at) {
		return
	}
	m.sides[side].Malformed++
	if len(m.malformed) < m.maxDiffs {
		if len(frame) > 300 {
			frame = append(frame[:300:300], "..."...)
		}
		m.malformed = append(m.malformed, side.String()+": "+why+": "+string(frame))
	}
}

// Progress is a cheap snapshot for the progress line.
type Progress struct {
	Legacy, Proxy int // data messages in the window
	Matched       int
	Pending       int
	OutOfFilter   int
}

// Progress returns the running counts.
func (m *Matcher) Progress() Progress {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Progress{Legacy: m.sides[Legacy].Data, Proxy: m.sides[Proxy].Data, Matched: m.matched, Pending: m.inWindow, OutOfFilter: m.outFilter}
}

// Report classifies what is still pending and returns the result. minParity
// decides Pass. It may be called once the readers have stopped.
func (m *Matcher) Report(minParity float64) *Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := &Report{
		Subscription: m.sub.String(),
		MinParity:    minParity,
		Matched:      m.matched,
		OutOfFilter:  m.outFilter,
		Legacy:       m.sides[Legacy],
		Proxy:        m.sides[Proxy],
		Types:        make(map[string]TypeStats, len(m.types)),
		Malformed:    append([]string(nil), m.malformed...),
	}
	if !m.start.IsZero() {
		r.WindowStart = m.start
	}
	if !m.end.IsZero() {
		r.WindowEnd = m.end
	}

	types := make(map[string]*TypeStats, len(m.types))
	for t, ts := range m.types {
		c := *ts
		types[t] = &c
	}
	typeOf := func(t string) *TypeStats {
		if types[t] == nil {
			types[t] = &TypeStats{}
		}
		return types[t]
	}
	keys := make([]Key, 0, len(m.pending))
	for k := range m.pending {
		keys = append(keys, k)
	}
	// Report in arrival order, so that the first diffs are the first seen.
	sort.Slice(keys, func(i, j int) bool { return m.pending[keys[i]][0].at.Before(m.pending[keys[j]][0].at) })
	for _, k := range keys {
		var sides [2][]*entry
		for _, e := range m.pending[k] {
			sides[e.side] = append(sides[e.side], e)
		}
		ts := typeOf(k.Type)
		n := min(len(sides[Legacy]), len(sides[Proxy]))
		for i := 0; i < n; i++ {
			l, p := sides[Legacy][i], sides[Proxy][i]
			if !l.counted && !p.counted {
				continue
			}
			r.Differing++
			ts.Differing++
			if len(r.Diffs) < m.maxDiffs {
				r.Diffs = append(r.Diffs, newDiff(k, l.canonical(), p.canonical()))
			}
		}
		for _, e := range sides[Legacy][n:] {
			if e.counted {
				r.MissingInProxy++
				ts.MissingInProxy++
				if len(r.MissingInProxySamples) < m.maxDiffs {
					r.MissingInProxySamples = append(r.MissingInProxySamples, Sample{Key: k, Payload: e.canonical()})
				}
			}
		}
		for _, e := range sides[Proxy][n:] {
			if e.counted {
				r.MissingInLegacy++
				ts.MissingInLegacy++
				if len(r.MissingInLegacySamples) < m.maxDiffs {
					r.MissingInLegacySamples = append(r.MissingInLegacySamples, Sample{Key: k, Payload: e.canonical()})
				}
			}
		}
	}
	for t, ts := range types {
		r.Types[t] = *ts
	}
	r.Skew = skewStats(m.skews, m.skewSeen)
	r.Control, r.ControlDiffs = m.controlReportLocked()
	r.finish()
	return r
}

// canonical re-encodes a JSON value with sorted object keys and numbers as
// written, so that key order and whitespace do not count as differences.
func canonical(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func isNumber(raw json.RawMessage) bool {
	var n json.Number
	return len(raw) > 0 && raw[0] != '"' && json.Unmarshal(raw, &n) == nil
}
