package histogram

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	subBits = 4
	subs    = 1 << subBits
	// maxExp is the largest power of two (in ns) with its own buckets:
	// 2^41 ns is about 36 minutes; longer values land in the last bucket.
	maxExp = 41
	// NumBuckets is the number of fine buckets.
	NumBuckets = (maxExp - subBits + 2) << subBits
)

// DefaultBounds are the exposition boundaries used when New gets none: the
// Prometheus convention plus the default health thresholds (15 ms, 30 ms).
var DefaultBounds = []time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 15 * time.Millisecond, 25 * time.Millisecond,
	30 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram counts observed durations. The zero value is not ready; use New.
//
// Concurrency: Observe may be called from any number of goroutines at once;
// Load and Bounds may run concurrently with it and see each counter
// atomically, though not all counters at one instant.
type Histogram struct {
	fine   [NumBuckets]atomic.Uint64
	sum    atomic.Int64 // ns
	max    atomic.Int64 // ns
	bounds []int64      // ns, ascending
	coarse []atomic.Uint64
}

// New returns a histogram whose exposition buckets end at bounds (ascending;
// nil: DefaultBounds). A last, open bucket (+Inf) is always added.
func New(bounds []time.Duration) *Histogram {
	if bounds == nil {
		bounds = DefaultBounds
	}
	h := &Histogram{bounds: make([]int64, len(bounds)), coarse: make([]atomic.Uint64, len(bounds)+1)}
	for i, b := range bounds {
		h.bounds[i] = int64(b)
	}
	return h
}

// Observe records one duration; negative values count as zero.
func (h *Histogram) Observe(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.fine[index(uint64(v))].Add(1)
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.coarse[i].Add(1)
	h.sum.Add(v)
	if v > h.max.Load() {
		for {
			m := h.max.Load()
			if v <= m || h.max.CompareAndSwap(m, v) {
				break
			}
		}
	}
}

// ObserveDelivery is Observe under the name pool.Observer asks for.
func (h *Histogram) ObserveDelivery(d time.Duration) { h.Observe(d) }

// index returns the fine bucket of v ns.
func index(v uint64) int {
	if v < subs {
		return int(v)
	}
	e := bits.Len64(v) - 1
	if e > maxExp {
		return NumBuckets - 1
	}
	return (e-subBits+1)<<subBits + int((v>>(e-subBits))&(subs-1))
}

// lower returns the smallest value of fine bucket i, in ns.
func lower(i int) int64 {
	if i < 2*subs {
		return int64(i)
	}
	g, s := i>>subBits, int64(i&(subs-1))
	return (subs + s) << (g - 1)
}

// upper returns the largest value of fine bucket i, in ns.
func upper(i int) int64 {
	if i < 2*subs {
		return int64(i)
	}
	return lower(i) + 1<<(i>>subBits-1) - 1
}

// Snapshot is a copy of a histogram's fine counters. It is a plain value; a
// Snapshot taken earlier can be subtracted from a later one to describe the
// time between them.
type Snapshot struct {
	Counts [NumBuckets]uint64
	Count  uint64
	Sum    int64 // ns
	Max    int64 // ns: the largest value observed (see Sub)
}

// Load copies h's counters into s (no allocation).
func (h *Histogram) Load(s *Snapshot) {
	s.Count = 0
	for i := range h.fine {
		n := h.fine[i].Load()
		s.Counts[i] = n
		s.Count += n
	}
	s.Sum = h.sum.Load()
	s.Max = h.max.Load()
}

// Sub turns s into the observations made between old and s. Max becomes the
// top of the highest bucket that gained observations, capped by s.Max.
func (s *Snapshot) Sub(old *Snapshot) {
	top := -1
	s.Count = 0
	for i := range s.Counts {
		s.Counts[i] -= old.Counts[i]
		if s.Counts[i] > 0 {
			top = i
			s.Count += s.Counts[i]
		}
	}
	s.Sum -= old.Sum
	if top < 0 {
		s.Max, s.Sum = 0, 0
		return
	}
	s.Max = min(s.Max, upper(top))
}

// Mean returns the average observation, 0 when there is none.
func (s *Snapshot) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return time.Duration(s.Sum / int64(s.Count))
}

// Quantile returns the q-quantile (0 < q <= 1): the middle of the bucket
// holding it, capped by Max. 0 when there is no observation.
func (s *Snapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	rank := uint64(q*float64(s.Count) + 0.5)
	rank = max(1, min(rank, s.Count))
	var seen uint64
	for i := range s.Counts {
		seen += s.Counts[i]
		if seen >= rank {
			mid := lower(i) + (upper(i)-lower(i))/2
			return time.Duration(min(mid, s.Max))
		}
	}
	return time.Duration(s.Max)
}

// Buckets is the exposition view of a histogram, for Prometheus.
type Buckets struct {
	// Bounds are the upper bounds in seconds, without +Inf.
	Bounds []float64
	// Cumulative[i] counts observations <= Bounds[i].
	Cumulative []uint64
	// Count counts every observation (the +Inf bucket); Sum is in seconds.
	Count uint64
	Sum   float64
}

// Buckets returns the cumulative exposition buckets.
func (h *Histogram) Buckets() Buckets {
	b := Buckets{Bounds: make([]float64, len(h.bounds)), Cumulative: make([]uint64, len(h.bounds))}
	for i, ns := range h.bounds {
		b.Bounds[i] = float64(ns) / 1e9
		b.Count += h.coarse[i].Load()
		b.Cumulative[i] = b.Count
	}
	b.Count += h.coarse[len(h.bounds)].Load()
	b.Sum = float64(h.sum.Load()) / 1e9
	return b
}
