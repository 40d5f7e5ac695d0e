package loadtest

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Latencies are recorded in microseconds in log-linear buckets: exact below
// 64 µs, then 32 buckets per power of two (about 3 % resolution).
const (
	subBits    = 5
	subCount   = 1 << subBits
	numBuckets = (64-subBits)*subCount + 2*subCount
)

func bucketOf(us uint64) int {
	if us < 2*subCount {
		return int(us)
	}
	shift := bits.Len64(us) - subBits - 1
	return (shift+1)*subCount + int(us>>uint(shift)) - subCount
}

// bucketValue returns the upper bound (µs) of bucket i.
func bucketValue(i int) uint64 {
	if i < 2*subCount {
		return uint64(i)
	}
	shift := i/subCount - 1
	return (uint64(i%subCount+subCount)+1)<<uint(shift) - 1
}

// hist is a concurrent latency histogram.
type hist struct {
	counts [numBuckets]atomic.Uint64
	max    atomic.Uint64
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	us := uint64(d / time.Microsecond)
	h.counts[bucketOf(us)].Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// sparse returns the non-empty buckets, for transport between processes.
func (h *hist) sparse() Hist {
	out := Hist{Buckets: map[int]uint64{}, MaxUS: h.max.Load()}
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			out.Buckets[i] = n
		}
	}
	return out
}

// Hist is a serialisable latency histogram.
type Hist struct {
	Buckets map[int]uint64 `json:"buckets"`
	MaxUS   uint64         `json:"maxUs"`
}

// Merge adds o into h.
func (h *Hist) Merge(o Hist) {
	if h.Buckets == nil {
		h.Buckets = map[int]uint64{}
	}
	for k, v := range o.Buckets {
		h.Buckets[k] += v
	}
	if o.MaxUS > h.MaxUS {
		h.MaxUS = o.MaxUS
	}
}

// Count returns the number of samples.
func (h *Hist) Count() uint64 {
	var n uint64
	for _, v := range h.Buckets {
		n += v
	}
	return n
}

// Quantile returns the q-quantile (0..1) in milliseconds.
func (h *Hist) Quantile(q float64) float64 {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := 0; i < numBuckets; i++ {
		seen += h.Buckets[i]
		if seen >= rank {
			v := bucketValue(i)
			if v > h.MaxUS {
				v = h.MaxUS
			}
			return float64(v) / 1000
		}
	}
	return float64(h.MaxUS) / 1000
}
