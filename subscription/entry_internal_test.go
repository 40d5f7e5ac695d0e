package subscription

import (
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func withChunkSize(tb testing.TB, n int) {
	tb.Helper()
	old := chunkSize
	chunkSize = n
	tb.Cleanup(func() { chunkSize = old })
}

func flatten[T comparable](r *recipients[T]) []T {
	if r == nil {
		return nil
	}
	var out []T
	for _, c := range r.full {
		out = append(out, c...)
	}
	return append(out, r.tail...)
}

// checkEntry verifies the writer-side invariants of e against want
// (subscriber → references).
func checkEntry(tb testing.TB, e *entry[int], want map[int]int) {
	tb.Helper()
	if e.n != len(want) || len(e.members) != len(want) {
		tb.Fatalf("n = %d, members = %d, want %d", e.n, len(e.members), len(want))
	}
	if len(e.full) != len(e.owned) {
		tb.Fatalf("%d chunks, %d owned flags", len(e.full), len(e.owned))
	}
	for i, c := range e.full {
		if len(c) != chunkSize {
			tb.Fatalf("chunk %d has %d entries", i, len(c))
		}
	}
	if len(e.tail) > chunkSize || len(e.full)*chunkSize+len(e.tail) != e.n {
		tb.Fatalf("tail %d with %d chunks for n = %d", len(e.tail), len(e.full), e.n)
	}
	all := slices.Concat(slices.Concat(e.full...), e.tail)
	for s, refs := range want {
		m, ok := e.members[s]
		if !ok || int(m.refs) != refs || all[m.pos] != s {
			tb.Fatalf("member %d: %+v (present %v), want refs %d at its position", s, m, ok, refs)
		}
	}
}

// TestEntryCopyOnWrite drives one bucket through random changes and random
// publication points, with tiny chunks, and checks that every list ever
// published keeps its contents while the writer goes on.
func TestEntryCopyOnWrite(t *testing.T) {
	for _, size := range []int{1, 2, 3, 4, 7} {
		t.Run("chunk="+string(rune('0'+size)), func(t *testing.T) {
			withChunkSize(t, size)
			r := rand.New(rand.NewPCG(uint64(size), 11))
			e := &entry[int]{}
			want := make(map[int]int)
			type snap struct {
				r    *recipients[int]
				copy []int
			}
			var snaps []snap
			for step := range 5000 {
				s := r.IntN(40)
				switch {
				case r.IntN(2) == 0 || want[s] == 0:
					e.incRefLocked(s)
					want[s]++
				default:
					e.decRefLocked(s)
					if want[s]--; want[s] == 0 {
						delete(want, s)
					}
				}
				checkEntry(t, e, want)
				if r.IntN(3) != 0 {
					continue
				}
				e.publishLocked()
				got := flatten(e.list.Load())
				if !maps.Equal(setOf(got), setOf(slices.Collect(maps.Keys(want)))) || len(got) != len(want) {
					t.Fatalf("step %d: published %v, want %v", step, got, want)
				}
				if pr := e.list.Load(); pr != nil {
					snaps = append(snaps, snap{pr, got})
				}
				for i, sn := range snaps {
					if !slices.Equal(flatten(sn.r), sn.copy) {
						t.Fatalf("step %d: snapshot %d changed: %v, was %v", step, i, flatten(sn.r), sn.copy)
					}
				}
				if len(snaps) > 200 {
					snaps = snaps[100:]
				}
			}
		})
	}
}

func setOf[T comparable](s []T) map[T]bool {
	out := make(map[T]bool, len(s))
	for _, x := range s {
		out[x] = true
	}
	return out
}

// TestEntryConcurrentReaders lets the race detector check that the writer
// never writes memory a reader may be reading.
func TestEntryConcurrentReaders(t *testing.T) {
	withChunkSize(t, 3)
	e := &entry[int]{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			sum := 0
			for !stop.Load() {
				if r := e.list.Load(); r != nil {
					for _, c := range r.full {
						for _, s := range c {
							sum += s
						}
					}
					for _, s := range r.tail {
						sum += s
					}
				}
			}
			_ = sum
		})
	}
	r := rand.New(rand.NewPCG(5, 6))
	refs := make(map[int]int)
	for range 20000 {
		s := r.IntN(30)
		if refs[s] > 0 && r.IntN(2) == 0 {
			e.decRefLocked(s)
			refs[s]--
		} else {
			e.incRefLocked(s)
			refs[s]++
		}
		if r.IntN(4) == 0 {
			e.publishLocked()
		}
	}
	stop.Store(true)
	wg.Wait()
}

// TestIndexLargeBucketChurn runs the public API over buckets of many chunks.
func TestIndexLargeBucketChurn(t *testing.T) {
	withChunkSize(t, 5)
	ix := NewIndex[int]()
	r := rand.New(rand.NewPCG(8, 8))
	want := make(map[int]bool)
	for step := range 3000 {
		s := r.IntN(120)
		if want[s] {
			ix.SetUnfiltered(s, false)
			delete(want, s)
		} else {
			ix.SetUnfiltered(s, true)
			want[s] = true
		}
		if step%50 != 0 {
			continue
		}
		m := ix.Match("binance", "trade", "BTCUSDT")
		got := make(map[int]bool)
		m.ForEach(func(s int) {
			if got[s] {
				t.Fatalf("step %d: %d twice", step, s)
			}
			got[s] = true
		})
		if !maps.Equal(got, want) {
			t.Fatalf("step %d: got %d recipients, want %d", step, len(got), len(want))
		}
		for i := range m.NumLists() {
			if l := len(m.List(i)); l == 0 || l > chunkSize {
				t.Fatalf("list %d has %d entries", i, l)
			}
		}
	}
}

// TestWritesCoalesce queues changes behind a busy combiner and checks that
// the next combiner publishes all of them at once.
func TestWritesCoalesce(t *testing.T) {
	ix := NewIndex[int]()
	const n = 50
	var wg sync.WaitGroup
	ix.mu.Lock() // a combiner at work
	for i := range n {
		wg.Go(func() { ix.SetUnfiltered(i, true) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ix.qmu.Lock()
		queued := len(ix.queue)
		ix.qmu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			ix.mu.Unlock()
			t.Fatalf("only %d of %d changes queued", queued, n)
		}
		runtime.Gosched()
	}
	ix.mu.Unlock()
	wg.Wait()
	st := ix.Stats()
	if st.Changes != n || st.Publications != 1 || st.Unfiltered != n {
		t.Fatalf("Stats = %+v, want %d changes in 1 publication", st, n)
	}
	m := ix.Match("a", "b", "c")
	if m.Len() != n {
		t.Fatalf("Match: %d recipients, want %d", m.Len(), n)
	}
}
