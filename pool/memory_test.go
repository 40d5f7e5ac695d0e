package pool_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"wsproxy/internal/configtest"
	"wsproxy/pool"
)

// syncBuf is a log sink safe for the pool's goroutine and the test.
type syncBuf struct {
	rc recConn
}

func (b *syncBuf) Write(p []byte) (int, error) { return b.rc.Write(p) }
func (b *syncBuf) String() string {
	b.rc.mu.Lock()
	defer b.rc.mu.Unlock()
	return b.rc.buf.String()
}

// TestMemoryLevels walks the monitor through its levels with a heap figure
// the test controls: levels rise at once, fall with hysteresis after
// RecoverAfter, each transition is logged once, and each level applies its
// measures.
func TestMemoryLevels(t *testing.T) {
	var heap atomic.Uint64
	logs := &syncBuf{}
	p := configtest.NewPool(t, pool.Config{
		FlushInterval: time.Hour, // frames wait for a flush, so FlushAll is observable
		Memory: pool.MemoryConfig{
			Threshold: 1 << 20, SampleInterval: 2 * time.Millisecond, RecoverAfter: 30 * time.Millisecond,
			Heap: func() uint64 { return heap.Load() },
		},
		Log: zerolog.New(logs),
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)

	pending := &recConn{}
	pc := p.Add(pending, pool.ConnOptions{ID: "pending"})
	pc.Enqueue(trade(0), 0)
	stalled := p.Add(&recConn{}, pool.ConnOptions{ID: "stalled", Hold: true}) // never writes

	level := func(want pool.Pressure) {
		t.Helper()
		waitFor(t, "level "+want.String(), func() bool { return p.Pressure() == want })
	}
	const mib = 1 << 20
	steps := []struct {
		name  string
		heap  float64 // fraction of the threshold
		want  pool.Pressure
		check func(t *testing.T)
	}{
		{"below 80% is normal", 0.5, pool.PressureNormal, func(t *testing.T) {
			if p.Admit() != nil || p.MemoryLevel() != "normal" {
				t.Fatal("normal level refuses connections")
			}
		}},
		{"80% is elevated: flush and shrink", 0.85, pool.PressureElevated, func(t *testing.T) {
			waitFor(t, "pending frame flushed", func() bool { return len(pending.frames(t)) == 1 })
			for i := 0; i < 100; i++ {
				stalled.Enqueue(trade(i), 0)
			}
			if d := stalled.Stats().QueueDepth; d != 25 {
				t.Fatalf("queue depth %d under elevated memory, want a quarter of 100", d)
			}
		}},
		{"critical at 100%", 1.0, pool.PressureCritical, func(t *testing.T) {
			if !errors.Is(p.Admit(), pool.ErrMemoryCritical) {
				t.Fatal("critical level admits connections")
			}
		}},
		{"critical holds above 80%", 0.85, pool.PressureCritical, nil},
		{"below 80% is elevated again", 0.75, pool.PressureElevated, nil},
		{"elevated holds above 70%", 0.72, pool.PressureElevated, nil},
		{"below 70% is normal", 0.5, pool.PressureNormal, func(t *testing.T) {
			for i := 0; i < 100; i++ {
				stalled.Enqueue(trade(i), 0)
			}
			if d := stalled.Stats().QueueDepth; d != 100 {
				t.Fatalf("queue depth %d back at normal, want 100", d)
			}
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := p.Pressure()
			changed := time.Now()
			heap.Store(uint64(st.heap * mib))
			level(st.want)
			// Since has millisecond resolution: allow 1 ms for the rounding.
			if ms := p.MemoryStats(); st.want < before && time.Duration(ms.Since-changed.UnixMilli())*time.Millisecond < 29*time.Millisecond {
				t.Fatalf("level lowered %dms after usage fell, want RecoverAfter (30ms)", ms.Since-changed.UnixMilli())
			}
			// The level holds over more samples than RecoverAfter spans.
			n := p.MemoryStats().Samples
			waitFor(t, "20 samples", func() bool { return p.MemoryStats().Samples >= n+20 })
			if got := p.Pressure(); got != st.want {
				t.Fatalf("level %s, want it to stay %s", got, st.want)
			}
			if st.check != nil {
				st.check(t)
			}
		})
	}
	want := []string{`"from":"normal","to":"elevated"`, `"from":"elevated","to":"critical"`,
		`"from":"critical","to":"elevated"`, `"from":"elevated","to":"normal"`}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want one per transition:\n%s", len(lines), logs.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) || !strings.Contains(lines[i], "memory pressure level changed") {
			t.Fatalf("log line %d = %s, want %s", i, lines[i], w)
		}
	}
	ms := p.Stats().Memory
	if ms.Transitions != 4 || ms.Level != "normal" || ms.ThresholdBytes != mib || ms.RefusedConnections != 1 {
		t.Fatalf("memory stats %+v", ms)
	}
}

// TestCriticalShedsSaturatedLatestWinsFirst: under critical memory the
// largest saturated queue loses its latest-wins frames first; its trades and
// every frame of a connection that keeps up stay.
func TestCriticalShedsSaturatedLatestWinsFirst(t *testing.T) {
	var heap atomic.Uint64
	const threshold = 1_000_000
	p := configtest.NewPool(t, pool.Config{
		FlushInterval: time.Hour,
		Memory: pool.MemoryConfig{
			Threshold: threshold, SampleInterval: 2 * time.Millisecond, RecoverAfter: 20 * time.Millisecond,
			Heap: func() uint64 { return heap.Load() },
		},
	}, nil)
	slow := p.Add(&recConn{}, pool.ConnOptions{ID: "slow", Hold: true})
	keeping := p.Add(&recConn{}, pool.ConnOptions{ID: "keeping", Hold: true})
	// slow: 50 tickers of 10 KB (distinct symbols) and 51 trades: full,
	// saturated, the oldest ticker dropped.
	for i := 0; i < 50; i++ {
		slow.Enqueue(latest(uint64(i), 10_000), 0)
	}
	for i := 0; i < 51; i++ {
		slow.Enqueue(trade(i), 0)
	}
	// keeping: a few tickers, never full.
	for i := 0; i < 10; i++ {
		keeping.Enqueue(latest(uint64(i), 10_000), 0)
	}
	if slow.Stats().SaturatedSince == 0 || keeping.Stats().SaturatedSince != 0 {
		t.Fatal("saturation not tracked")
	}
	// usage = 550 kB heap + 590 kB queued: critical; shedding must free
	// 340 kB to get below 80%, which the slow connection's 49 tickers cover
	// (its oldest went for the 101st frame). Then usage is 650 kB: normal.
	heap.Store(550_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	waitFor(t, "memory shed", func() bool { return p.ShedTotal(pool.ReasonMemory) > 0 })
	waitFor(t, "recovery", func() bool { return p.Pressure() == pool.PressureNormal })

	st := slow.Stats()
	if st.QueueDepth != 51 || st.Shed["memory_critical"] != 49 {
		t.Fatalf("slow: depth %d shed %v, want its 51 trades kept and 49 tickers shed", st.QueueDepth, st.Shed)
	}
	if ks := keeping.Stats(); ks.QueueDepth != 10 || ks.Dropped != 0 {
		t.Fatalf("connection keeping up lost frames: %+v", ks)
	}
}

// TestConflationReplacesNewestSameKey checks the in-place rule at the unit
// level: only when full, the newest queued frame of the key, count kept.
func TestConflationReplacesNewestSameKey(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{QueueMaxMessages: 4, FlushInterval: time.Hour, BatchMaxMessages: 100}, nil)
	rc := &recConn{}
	c := p.Add(rc, pool.ConnOptions{})
	a1, b1, a2 := latestData(1, "a1"), latestData(2, "b1"), latestData(1, "a2")
	c.Enqueue(a1, 0)
	c.Enqueue(b1, 0)
	c.Enqueue(a2, 0) // not full: queued beside a1
	c.Enqueue(trade(0), 0)
	c.Enqueue(latestData(1, "a3"), 0) // full: replaces a2 (the newest of key 1)
	c.Enqueue(trade(1), 0)            // full: drops a1
	if c.ShedTotal(pool.ReasonConflated) != 1 || c.ShedTotal(pool.ReasonQueueFull) != 1 {
		t.Fatalf("shed %v", c.Stats().Shed)
	}
	p.FlushAll()
	waitFor(t, "frames", func() bool { return len(rc.frames(t)) == 4 })
	var got []string
	for _, f := range rc.frames(t) {
		got = append(got, f.payload)
	}
	if want := `b1 a3 {"trade":0} {"trade":1}`; strings.Join(got, " ") != want {
		t.Fatalf("wrote %q, want %q", strings.Join(got, " "), want)
	}
}

// TestBatchMaxBytes: a write carries at most BatchMaxBytes of frames (one
// larger frame alone), so a writer stuck on a stalled client pins little.
func TestBatchMaxBytes(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{BatchMaxBytes: 4096, FlushInterval: time.Hour, BatchMaxMessages: 1000}, nil)
	rc := &recConn{}
	c := p.Add(rc, pool.ConnOptions{})
	for i := 0; i < 10; i++ {
		c.Enqueue(&pool.Frame{Op: pool.OpText, Data: bytes.Repeat([]byte("x"), 1000), IngestAt: 1}, 0)
	}
	c.Enqueue(&pool.Frame{Op: pool.OpText, Data: bytes.Repeat([]byte("y"), 10000), IngestAt: 1}, 0)
	p.FlushAll()
	waitFor(t, "frames", func() bool { return len(rc.frames(t)) == 11 })
	if w := rc.writeCount(); w != 4 { // 4+4+2 small frames, then the large one alone
		t.Fatalf("%d writes, want 4", w)
	}
}

// TestEnqueueFullQueueAllocatesNothing guards the shedding paths: conflating
// and dropping on a full queue allocate nothing.
func TestEnqueueFullQueueAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; run without -race (scripts/test.sh does)")
	}
	p := configtest.NewPool(t, pool.Config{}, nil)
	c := p.Add(&recConn{}, pool.ConnOptions{Hold: true})
	for i := 0; i < 100; i++ {
		c.Enqueue(latest(uint64(i), 100), 0)
	}
	conflate, drop := latest(0, 100), trade(1)
	allocs := testing.AllocsPerRun(1000, func() {
		c.Enqueue(conflate, 0)
		c.Enqueue(drop, 0)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per enqueue on a full queue", allocs)
	}
}

// heapObjects is the heap the runtime counts as allocated: live objects and
// garbage not yet collected.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

var garbageSink [][]byte

// TestMemoryTrimReturnsGarbage: garbage left behind while no collection
// runs (the collector is off here, as on an idle node that allocates
// nothing) is collected by the monitor after TrimAfter and the memory
// returned; with TrimAfter negative it stays.
func TestMemoryTrimReturnsGarbage(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, trim := range []time.Duration{20 * time.Millisecond, -1} {
		runtime.GC()
		p := configtest.NewPool(t, pool.Config{Memory: pool.MemoryConfig{
			Threshold: 1 << 40, SampleInterval: 2 * time.Millisecond, TrimAfter: trim}}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		go p.Run(ctx)
		for range 64 {
			garbageSink = append(garbageSink, make([]byte, 256<<10))
		}
		before := heapObjects()
		garbageSink = nil // 16 MiB of garbage, and no collection runs on its own
		if trim > 0 {
			waitFor(t, "a trim", func() bool { return p.MemoryTrims() > 0 })
			waitFor(t, "garbage collected", func() bool { return heapObjects() < before-8<<20 })
		} else {
			time.Sleep(200 * time.Millisecond)
			if n := p.MemoryTrims(); n != 0 {
				t.Fatalf("%d trims with TrimAfter negative", n)
			}
			if h := heapObjects(); h < before-8<<20 {
				t.Fatalf("heap fell from %d to %d without a trim", before, h)
			}
		}
		cancel()
	}
}
