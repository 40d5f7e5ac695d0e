package pool

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"time"
)

// ErrMemoryCritical is returned by Admit while memory is critical: new
// connections are refused (close 1013) until it recovers.
var ErrMemoryCritical = errors.New("pool: memory critical, not accepting connections")

// Pressure is the memory monitor's level.
type Pressure int32

// Memory pressure levels, in increasing order.
const (
	// PressureNormal: the configured queue bounds apply.
	PressureNormal Pressure = iota
	// PressureElevated: usage reached MemoryConfig.ElevatedRatio of the
	// threshold. Pending frames are flushed and queue bounds shrink to a
	// quarter, so that connections with a backlog conflate and drop sooner.
	PressureElevated
	// PressureCritical: usage reached MemoryConfig.CriticalRatio of the
	// threshold. On top of the above, queued latest-wins frames of saturated
	// connections are dropped, largest queue first (then their other data
	// frames if that is not enough), and new connections are refused.
	PressureCritical
)

var pressureNames = [...]string{"normal", "elevated", "critical"}

func (l Pressure) String() string {
	if l < 0 || int(l) >= len(pressureNames) {
		return "unknown"
	}
	return pressureNames[l]
}

// MemoryConfig configures the memory monitor, which the pool's Run loop
// drives. Usage is the Go heap (runtime/metrics
// /memory/classes/heap/objects:bytes) plus the data bytes queued over all
// connections: every queued frame is copied into its connection's write
// buffer before it goes out, so the queues forecast memory the heap does not
// show yet. Levels rise as soon as a sample crosses a ratio and fall only
// after usage stayed below the lower ratio for RecoverAfter.
type MemoryConfig struct {
	// Threshold is the usage, in bytes, that the ratios refer to.
	// Negative: no monitor (the level stays normal). The defaults of this
	// and the other fields are config's (memory.*).
	Threshold int64 `yaml:"threshold"`
	// SampleInterval between samples, at least 1ms.
	SampleInterval time.Duration `yaml:"sample_interval"`
	// ElevatedRatio of Threshold enters elevated; usage below it leaves
	// critical.
	ElevatedRatio float64 `yaml:"elevated_ratio"`
	// CriticalRatio of Threshold enters critical.
	CriticalRatio float64 `yaml:"critical_ratio"`
	// RecoverRatio of Threshold: usage below it returns to normal.
	RecoverRatio float64 `yaml:"recover_ratio"`
	// RecoverAfter is how long usage must stay below a level's exit ratio
	// before the level is lowered.
	RecoverAfter time.Duration `yaml:"recover_after"`
	// TrimAfter: once no garbage collection ran for this long and the heap
	// holds more than a quarter (and 1 MiB) beyond what the last one found
	// live (garbage, or freed memory still resident), the monitor collects and returns the free memory to the system
	// (debug.FreeOSMemory), at most once a minute. After a storm of connections an idle node may
	// otherwise run no collection for minutes and keep the handshakes'
	// garbage resident. Negative: never.
	TrimAfter time.Duration `yaml:"trim_after"`
	// Heap replaces the heap measurement (a cgroup's usage, a test's
	// figure). nil: the Go heap from runtime/metrics; the monitor then runs
	// a garbage collection on entering critical, and whenever a level above
	// normal has seen none for a second, so that garbage neither lingers
	// under pressure nor holds the level up.
	Heap func() uint64 `yaml:"-"`
}

// Validate checks c: unless the monitor is off (Threshold < 0), the
// threshold and RecoverAfter must be positive, SampleInterval at least 1ms
// and the ratios satisfy 0 < RecoverRatio < ElevatedRatio <= CriticalRatio.
func (c MemoryConfig) Validate() error {
	if c.Threshold < 0 {
		return nil
	}
	var errs []error
	if c.Threshold == 0 {
		errs = append(errs, errors.New("memory threshold must be positive (negative: no monitor)"))
	}
	if c.RecoverRatio <= 0 {
		errs = append(errs, fmt.Errorf("memory recover ratio %g must be positive", c.RecoverRatio))
	}
	if c.RecoverAfter <= 0 {
		errs = append(errs, fmt.Errorf("memory recover_after %s must be positive", c.RecoverAfter))
	}
	if !(c.RecoverRatio < c.ElevatedRatio && c.ElevatedRatio <= c.CriticalRatio) {
		errs = append(errs, fmt.Errorf("memory ratios must satisfy recover (%g) < elevated (%g) <= critical (%g)",
			c.RecoverRatio, c.ElevatedRatio, c.CriticalRatio))
	}
	if c.SampleInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("memory sample interval %s is below 1ms", c.SampleInterval))
	}
	return errors.Join(errs...)
}

// MemoryStats is a snapshot of the memory monitor, for stats and metrics.
type MemoryStats struct {
	// Level is "normal", "elevated" or "critical".
	Level string `json:"level"`
	// UsageBytes = HeapBytes + QueuedBytes at the last sample.
	UsageBytes     int64 `json:"usageBytes"`
	HeapBytes      int64 `json:"heapBytes"`
	QueuedBytes    int64 `json:"queuedBytes"`
	ThresholdBytes int64 `json:"thresholdBytes"`
	// Since is when (unix ms) the current level was entered; 0: never left
	// normal.
	Since int64 `json:"since"`
	// Transitions counts level changes.
	Transitions uint64 `json:"transitions"`
	// Samples counts samples taken.
	Samples uint64 `json:"samples"`
	// RefusedConnections counts connections refused while critical.
	RefusedConnections uint64 `json:"refusedConnections"`
}

// memoryMonitor holds the level, read on the hot path, and the sampler's
// state, owned by the Run goroutine.
type memoryMonitor struct {
	level       atomic.Int32
	usage       atomic.Int64
	heap        atomic.Int64
	queued      atomic.Int64
	since       atomic.Int64
	transitions atomic.Uint64
	sampled     atomic.Uint64
	refused     atomic.Uint64
	gcRunning   atomic.Bool
	trims       atomic.Uint64

	cfg       *MemoryConfig
	samples   []metrics.Sample
	downSince int64  // when the sampled usage first called for a lower level
	gcCycles  uint64 // completed GC cycles at the last sample
	gcSeenAt  int64  // when gcCycles last changed
	lastTrim  int64  // when the monitor last trimmed (trimIfStale)
}

func (m *memoryMonitor) init(cfg *MemoryConfig) {
	m.cfg = cfg
	m.samples = []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
}

// readHeap returns the heap in use and the completed GC cycles (0 with a
// custom Heap function).
func (m *memoryMonitor) readHeap() (heap, gcCycles uint64) {
	if m.cfg.Heap != nil {
		return m.cfg.Heap(), 0
	}
	metrics.Read(m.samples)
	if v := m.samples[0].Value; v.Kind() == metrics.KindUint64 {
		heap = v.Uint64()
	}
	if v := m.samples[1].Value; v.Kind() == metrics.KindUint64 {
		gcCycles = v.Uint64()
	}
	return heap, gcCycles
}

// live returns the heap the last collection found live, and the free heap
// memory not yet returned to the system, as of the last readHeap (0 with a
// custom Heap function).
func (m *memoryMonitor) live() (live, free uint64) {
	if m.cfg.Heap != nil {
		return 0, 0
	}
	if v := m.samples[2].Value; v.Kind() == metrics.KindUint64 {
		live = v.Uint64()
	}
	if v := m.samples[3].Value; v.Kind() == metrics.KindUint64 {
		free = v.Uint64()
	}
	return live, free
}

// desired is the level usage calls for, given the current level: rising
// ratios enter a level, lower ones leave it.
func (m *memoryMonitor) desired(cur Pressure, usage int64) Pressure {
	t, u := float64(m.cfg.Threshold), float64(usage)
	switch {
	case u >= m.cfg.CriticalRatio*t:
		return PressureCritical
	case cur == PressureCritical && u >= m.cfg.ElevatedRatio*t:
		return PressureCritical
	case u >= m.cfg.ElevatedRatio*t:
		return PressureElevated
	case cur >= PressureElevated && u >= m.cfg.RecoverRatio*t:
		return PressureElevated
	}
	return PressureNormal
}

// sampleMemory takes one sample and acts on it. Called by Run only. The
// sample's time is read after the heap figure, not taken from the ticker: a
// tick that waited while the loop was busy would otherwise date a new
// figure before it was read, and shorten RecoverAfter by the wait.
func (p *Pool) sampleMemory() {
	m := &p.mem
	heap, gcs := m.readHeap()
	now := time.Now()
	queued := p.queuedBytes.Load()
	usage := int64(heap) + queued
	m.heap.Store(int64(heap))
	m.queued.Store(queued)
	m.usage.Store(usage)

	ns := now.UnixNano()
	cur := Pressure(m.level.Load())
	want := m.desired(cur, usage)
	switch {
	case want > cur:
		m.downSince = 0
		p.setPressure(cur, want, now)
	case want < cur:
		if m.downSince == 0 {
			m.downSince = ns
		}
		if ns-m.downSince >= m.cfg.RecoverAfter.Nanoseconds() {
			m.downSince = 0
			p.setPressure(cur, want, now)
		}
	default:
		m.downSince = 0
	}

	level := Pressure(m.level.Load())
	if level == PressureCritical {
		p.shedForMemory(usage - int64(m.cfg.ElevatedRatio*float64(m.cfg.Threshold)))
	}
	if m.cfg.Heap == nil {
		m.collectIfStale(level, level == PressureCritical && cur != PressureCritical, ns, gcs)
		m.trimIfStale(ns, heap)
	}
	m.sampled.Add(1)
}

// collectIfStale runs a garbage collection on entering critical (what was
// just shed, and the garbage the heap figure includes, is returned at once
// rather than at the collector's next pacing point), and when a level above
// normal has seen none for a second (an idle process may not run one for
// minutes, and its garbage would hold the level up).
func (m *memoryMonitor) collectIfStale(level Pressure, enteredCritical bool, ns int64, gcs uint64) {
	if gcs != m.gcCycles || m.gcSeenAt == 0 {
		m.gcCycles, m.gcSeenAt = gcs, ns
		if !enteredCritical {
			return
		}
	}
	if !enteredCritical && (level == PressureNormal || ns-m.gcSeenAt < int64(time.Second)) {
		return
	}
	if m.gcRunning.CompareAndSwap(false, true) {
		m.gcSeenAt = ns
		go func() {
			runtime.GC()
			m.gcRunning.Store(false)
		}()
	}
}

// trimEvery bounds how often the monitor trims: returning memory costs the
// next allocations page faults, and under steady traffic that shows in the
// delivery's tail.
const trimEvery = time.Minute

// trimIfStale runs a collection and returns free memory to the system
// when no collection ran for TrimAfter and the heap holds, beyond its live
// objects, garbage or free memory still resident worth it
// (MemoryConfig.TrimAfter). Called after collectIfStale, which dates the
// last collection (gcSeenAt).
func (m *memoryMonitor) trimIfStale(ns int64, heap uint64) {
	after := m.cfg.TrimAfter
	if after <= 0 || ns-m.gcSeenAt < after.Nanoseconds() || (m.lastTrim != 0 && ns-m.lastTrim < int64(trimEvery)) {
		return
	}
	live, free := m.live()
	var garbage uint64 // held beyond the live heap: uncollected, or free and resident
	if heap > live {
		garbage = heap - live
	}
	garbage += free
	if live == 0 || garbage < live/4 || garbage < 1<<20 {
		return
	}
	if m.gcRunning.CompareAndSwap(false, true) {
		m.gcSeenAt, m.lastTrim = ns, ns
		m.trims.Add(1)
		go func() {
			debug.FreeOSMemory()
			m.gcRunning.Store(false)
		}()
	}
}

// setPressure moves the level and logs the transition once. Entering a
// higher level flushes every pending frame.
func (p *Pool) setPressure(from, to Pressure, now time.Time) {
	m := &p.mem
	m.level.Store(int32(to))
	m.since.Store(now.UnixMilli())
	m.transitions.Add(1)
	ev := p.log.Info()
	if to > from {
		ev = p.log.Warn()
	}
	ev.Str("from", from.String()).Str("to", to.String()).
		Int64("usage_bytes", m.usage.Load()).Int64("heap_bytes", m.heap.Load()).
		Int64("queued_bytes", m.queued.Load()).Int64("threshold_bytes", m.cfg.Threshold).
		Msg("memory pressure level changed")
	if to > from {
		p.FlushAll()
	}
}

// shedForMemory frees about excess queued bytes from saturated connections,
// largest queue first: their latest-wins frames first (a newer one follows),
// then, if that was not enough, their other data frames. Connections that
// keep up are never shed for memory.
func (p *Pool) shedForMemory(excess int64) {
	if excess <= 0 {
		return
	}
	type victim struct {
		c     *Conn
		bytes int
	}
	var vs []victim
	for _, c := range p.snapshot() {
		if c.satSince.Load() == 0 {
			continue
		}
		c.mu.Lock()
		b := c.qBytes
		c.mu.Unlock()
		if b > 0 {
			vs = append(vs, victim{c, b})
		}
	}
	slices.SortFunc(vs, func(a, b victim) int { return b.bytes - a.bytes })
	passes := [...]func(*Frame) bool{
		func(f *Frame) bool { return f.LatestWins },
		func(*Frame) bool { return true },
	}
	for _, drop := range passes {
		for _, v := range vs {
			v.c.mu.Lock()
			n, b := v.c.dropDataLocked(drop)
			v.c.mu.Unlock()
			if n > 0 {
				v.c.shed(ReasonMemory, n)
				excess -= int64(b)
			}
			if excess <= 0 {
				return
			}
		}
	}
}

// MemoryTrims returns how many times the monitor returned free memory to
// the system (MemoryConfig.TrimAfter).
func (p *Pool) MemoryTrims() uint64 { return p.mem.trims.Load() }

// Pressure returns the current memory level.
func (p *Pool) Pressure() Pressure { return Pressure(p.mem.level.Load()) }

// MemoryLevel returns the current memory level's name: "normal",
// "elevated" or "critical".
func (p *Pool) MemoryLevel() string { return p.Pressure().String() }

// Admit reports whether a new connection may be accepted: while memory is
// critical it returns ErrMemoryCritical and counts the refusal.
func (p *Pool) Admit() error {
	if p.Pressure() == PressureCritical {
		p.mem.refused.Add(1)
		return ErrMemoryCritical
	}
	return nil
}

// MemoryStats returns a snapshot of the memory monitor.
func (p *Pool) MemoryStats() MemoryStats {
	m := &p.mem
	return MemoryStats{
		Level:              p.MemoryLevel(),
		UsageBytes:         m.usage.Load(),
		HeapBytes:          m.heap.Load(),
		QueuedBytes:        m.queued.Load(),
		ThresholdBytes:     m.cfg.Threshold,
		Since:              m.since.Load(),
		Transitions:        m.transitions.Load(),
		Samples:            m.sampled.Load(),
		RefusedConnections: m.refused.Load(),
	}
}
