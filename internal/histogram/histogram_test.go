package histogram

import (
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestBucketsTileTheRange(t *testing.T) {
	for i := 0; i < NumBuckets-1; i++ {
		if lower(i) > upper(i) || upper(i)+1 != lower(i+1) {
			t.Fatalf("bucket %d = [%d,%d], next starts at %d", i, lower(i), upper(i), lower(i+1))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 100000; n++ {
		v := r.Uint64N(1 << 42)
		if n%3 == 0 {
			v = r.Uint64N(4096)
		}
		i := index(v)
		if int64(v) < lower(i) || int64(v) > upper(i) {
			t.Fatalf("index(%d) = %d = [%d,%d]", v, i, lower(i), upper(i))
		}
		if width := upper(i) - lower(i) + 1; i >= 2*subs && float64(width)/float64(lower(i)) > 1.0/subs+1e-9 {
			t.Fatalf("bucket %d too wide: %d at %d", i, width, lower(i))
		}
	}
	if index(1<<50) != NumBuckets-1 {
		t.Fatal("huge values must land in the last bucket")
	}
}

func TestQuantilesWithinBucketError(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) time.Duration
	}{
		{"uniform 0-100ms", func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(100 * time.Millisecond))) }},
		{"exponential mean 2ms", func(r *rand.Rand) time.Duration { return time.Duration(r.ExpFloat64() * 2e6) }},
		{"constant 15ms", func(*rand.Rand) time.Duration { return 15 * time.Millisecond }},
		{"bimodal 50us/40ms", func(r *rand.Rand) time.Duration {
			if r.IntN(10) == 0 {
				return 40 * time.Millisecond
			}
			return 50 * time.Microsecond
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(nil)
			r := rand.New(rand.NewPCG(3, 4))
			vals := make([]time.Duration, 20000)
			var sum time.Duration
			for i := range vals {
				vals[i] = tt.gen(r)
				sum += vals[i]
				h.Observe(vals[i])
			}
			sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
			var s Snapshot
			h.Load(&s)
			if s.Count != uint64(len(vals)) || s.Max != int64(vals[len(vals)-1]) {
				t.Fatalf("count %d max %d", s.Count, s.Max)
			}
			if got, want := s.Mean(), sum/time.Duration(len(vals)); got != want {
				t.Fatalf("mean %s, want %s", got, want)
			}
			for _, q := range []float64{0.5, 0.95, 0.99, 1} {
				want := vals[int(q*float64(len(vals)))-1]
				got := s.Quantile(q)
				if d := float64(got-want) / float64(want); d > 1.0/subs || d < -1.0/subs {
					t.Fatalf("q%.2f = %s, want %s (error %.3f)", q, got, want, d)
				}
			}
		})
	}
}

func TestSubDescribesTheInterval(t *testing.T) {
	h := New(nil)
	for i := 0; i < 100; i++ {
		h.Observe(time.Second)
	}
	var old, cur Snapshot
	h.Load(&old)
	for i := 0; i < 10; i++ {
		h.Observe(2 * time.Millisecond)
	}
	h.Load(&cur)
	cur.Sub(&old)
	if cur.Count != 10 || cur.Mean() != 2*time.Millisecond {
		t.Fatalf("interval count %d mean %s", cur.Count, cur.Mean())
	}
	if m := time.Duration(cur.Max); m < 2*time.Millisecond || m > 2*time.Millisecond*17/16 {
		t.Fatalf("interval max %s: the older 1s values must not count", m)
	}
	h.Load(&old)
	h.Load(&cur)
	cur.Sub(&old)
	if cur.Count != 0 || cur.Max != 0 || cur.Quantile(0.99) != 0 || cur.Mean() != 0 {
		t.Fatalf("empty interval: %+v", cur.Count)
	}
}

func TestExpositionBucketsAreExact(t *testing.T) {
	h := New([]time.Duration{time.Millisecond, 15 * time.Millisecond})
	for _, d := range []time.Duration{0, time.Millisecond, time.Millisecond + 1, 15 * time.Millisecond, 15*time.Millisecond + 1, time.Hour, -5} {
		h.Observe(d)
	}
	b := h.Buckets()
	if b.Bounds[0] != 0.001 || b.Bounds[1] != 0.015 {
		t.Fatalf("bounds %v", b.Bounds)
	}
	// <= 1ms: 0, 1ms, -5; <= 15ms: also 1ms+1ns and 15ms.
	if b.Cumulative[0] != 3 || b.Cumulative[1] != 5 || b.Count != 7 {
		t.Fatalf("cumulative %v count %d", b.Cumulative, b.Count)
	}
}

func TestConcurrentObserveLosesNothing(t *testing.T) {
	h := New(nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10000; i++ {
				h.Observe(time.Duration(g*1000+i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	var s Snapshot
	h.Load(&s)
	if s.Count != 80000 || h.Buckets().Count != 80000 || s.Max != int64(16999*time.Microsecond) {
		t.Fatalf("count %d/%d max %d", s.Count, h.Buckets().Count, s.Max)
	}
}

func TestObserveAllocs(t *testing.T) {
	h := New(nil)
	var s Snapshot
	if n := testing.AllocsPerRun(1000, func() {
		h.Observe(3 * time.Millisecond)
		h.Load(&s)
		_ = s.Quantile(0.99)
	}); n != 0 {
		t.Fatalf("Observe+Load+Quantile allocate %.1f times", n)
	}
}
