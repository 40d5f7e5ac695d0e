package proxy_test

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
)

// TestMemoryCriticalRefuses1013: while memory is critical a new connection
// is closed with 1013 "Server at capacity", health is unhealthy and the
// level is in the stats. A 1 KiB threshold is below any Go process's heap,
// so the real monitor goes critical at its first sample.
func TestMemoryCriticalRefuses1013(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Memory.Threshold = 1 << 10
		c.Memory.SampleInterval = 5 * time.Millisecond
	})
	wstest.Eventually(t, wait, "memory critical", func() bool { return h.srv.Pool().MemoryLevel() == "critical" })
	c := wstest.Dial(t, h.url)
	cl, msgs := c.WaitClose(t, wait)
	if cl.Code != websocket.CloseTryAgainLater || cl.Reason != "Server at capacity" || len(msgs) != 0 {
		t.Fatalf("connection under critical memory: close %+v after %d messages", cl, len(msgs))
	}
	st := h.srv.Stats()
	if st.Health.Status != "unhealthy" || st.Pool.MemoryLevel != "critical" {
		t.Fatalf("health %q, pool memory level %q", st.Health.Status, st.Pool.MemoryLevel)
	}
	if ms := h.srv.Pool().MemoryStats(); ms.RefusedConnections != 1 || ms.UsageBytes < ms.ThresholdBytes {
		t.Fatalf("memory stats %+v", ms)
	}
}

// processMemory is the memory the flood test bounds: the process RSS
// (VmRSS); under the race detector, whose shadow memory multiplies RSS,
// the memory the Go runtime holds from the OS instead.
func processMemory(tb testing.TB) uint64 {
	tb.Helper()
	if wstest.RaceEnabled {
		s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64() - s[1].Value.Uint64()
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// subscribeRaw adds filter to a raw client and waits for the reply.
func subscribeRaw(tb testing.TB, r *wstest.Raw, filter string) {
	tb.Helper()
	if err := r.WriteText(`{"type":"subscribe","payload":` + filter + `}`); err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		f, err := r.ReadFrame(deadline)
		if err != nil {
			tb.Fatalf("no subscribed reply: %v", err)
		}
		if strings.Contains(string(f.Payload), `"subscribed"`) {
			return
		}
	}
}

// floodResult is what a flood run measured.
type floodResult struct {
	baseline, peak   uint64 // processMemory before and at most during the flood
	peakLevel        pool.Pressure
	healthyDelivered int
}

const (
	floodThreshold = 64 << 20
	// floodMargin is how far above the threshold the process may go: as
	// much again. The monitor holds heap objects plus queues near the
	// threshold, but with GOGC=100 the Go heap may hold as much garbage and
	// free spans as live data before the collector and scavenger catch up,
	// and the process also holds stacks, runtime metadata and the test's
	// clients. Without the monitor the same flood peaks well above this
	// (BenchmarkFloodMemory: about 150-210 MiB).
	floodMargin = floodThreshold
	// floodGrowth bounds what the flood may add to the process: the
	// threshold and half the margin.
	floodGrowth = floodThreshold + floodMargin/2
)

// flood runs 50 clients, 10 of them (20%) stalled, each stalled one
// subscribed to its own symbol so that their queues hold distinct frames,
// against a flood of 32 KiB messages: without shedding, each stalled queue
// would pin 8 MiB (80 MiB in all) plus garbage. Healthy clients subscribe to
// a separate paced stream of which they must miss nothing. The stalled
// clients then go away. threshold < 0 runs without the monitor.
func flood(tb testing.TB, threshold int64) floodResult {
	const healthyN, stalledN, floodMsgs = 40, 10, 4000
	h := start(tb, func(c *config.Config) {
		c.Memory.Threshold = threshold
		c.Memory.SampleInterval = 10 * time.Millisecond
		c.Memory.RecoverAfter = 300 * time.Millisecond
		c.Queue.MaxMessages = 1000
		c.Queue.MaxBytes = 8 << 20
		c.SlowConsumer.MaxLag = time.Minute // the stalled clients stay until they leave
		c.WriteTimeout = time.Minute
	})
	// The monitor reads this test process's whole heap: let garbage left by
	// earlier tests go first, so that the clients below are not refused.
	if threshold > 0 {
		wstest.Eventually(tb, 10*time.Second, "memory level normal before the flood", func() bool {
			runtime.GC()
			return h.srv.Pool().MemoryLevel() == "normal"
		})
	}
	var healthy []*seqReader
	var healthyConns []*pool.Conn
	for i := 0; i < healthyN; i++ {
		r := wstest.DialRaw(tb, h.url, 0)
		healthyConns = append(healthyConns, h.poolConn(tb, r.Conn.LocalAddr()))
		subscribeRaw(tb, r, `{"exchange":["healthy"]}`)
		healthy = append(healthy, readSeqs(r))
	}
	var stalled []*wstest.Raw
	for i := 0; i < stalledN; i++ {
		r := wstest.DialRaw(tb, h.url, stalledRcvBuf)
		h.poolConn(tb, r.Conn.LocalAddr())
		subscribeRaw(tb, r, `{"exchange":["flood"],"symbols":["F`+strconv.Itoa(i)+`/USDT"]}`)
		stalled = append(stalled, r)
	}

	runtime.GC()
	debug.FreeOSMemory()
	res := floodResult{baseline: processMemory(tb)}
	var peak atomic.Uint64
	var peakLevel atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // samples memory and level until stop
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if m := processMemory(tb); m > peak.Load() {
				peak.Store(m)
			}
			if l := int32(h.srv.Pool().Pressure()); l > peakLevel.Load() {
				peakLevel.Store(l)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	// One payload for every flood message: each is still encoded into a
	// frame of its own, and the test adds no garbage of its own.
	data := []byte(`{"pad":"` + strings.Repeat("f", 32<<10) + `"}`)
	symbols := make([]string, stalledN)
	for i := range symbols {
		symbols[i] = "F" + strconv.Itoa(i) + "/USDT"
	}
	published, healthySeq := uint64(0), 0
	for i := 0; i < floodMsgs; i++ {
		md := dataflow.MarketData{Exchange: "flood", Type: "trade", Symbol: symbols[i%stalledN], Timestamp: int64(i + 1), Data: data}
		if err := h.in.Output(context.Background(), md); err != nil {
			tb.Fatal(err)
		}
		published++
		if i%2 == 0 {
			h.send(tb, "healthy", "trade", "H/USDT", `{"seq":`+strconv.Itoa(healthySeq)+`}`)
			healthySeq++
			published++
		}
		if i%50 == 49 {
			h.dispatched(tb, published)
			drained(tb, healthyConns...)
		}
	}
	h.dispatched(tb, published)
	for _, sr := range healthy {
		sr.expect(tb, healthySeq, 30*time.Second)
	}
	res.healthyDelivered = healthySeq
	for i, c := range healthyConns {
		if st := c.Stats(); st.Dropped != 0 {
			tb.Errorf("healthy client %d lost %d frames (%v)", i, st.Dropped, st.Shed)
		}
	}

	// The stalled clients go.
	for _, r := range stalled {
		_ = r.Conn.Close()
	}
	wstest.Eventually(tb, wait, "stalled clients gone", func() bool { return h.srv.Pool().Len() == healthyN })
	close(stop)
	wg.Wait()
	res.peak, res.peakLevel = peak.Load(), pool.Pressure(peakLevel.Load())
	if threshold > 0 {
		wstest.Eventually(tb, 15*time.Second, "memory level back to normal", func() bool {
			return h.srv.Pool().MemoryLevel() == "normal"
		})
	}
	return res
}

// TestMemoryFloodWithStalledClients: under a flood with 20% stalled
// clients and a 64 MiB threshold the monitor leaves normal, the process
// grows by less than floodGrowth over its baseline, healthy clients lose nothing, and
// the level is normal again once the stalled clients are gone.
func TestMemoryFloodWithStalledClients(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test skipped in -short mode")
	}
	r := flood(t, floodThreshold)
	t.Logf("memory: baseline %d MiB, peak %d MiB (growth bound %d MiB); peak level %s; %d healthy messages each",
		r.baseline>>20, r.peak>>20, floodGrowth>>20, r.peakLevel, r.healthyDelivered)
	if r.peakLevel == pool.PressureNormal {
		t.Fatal("the flood never raised the memory level: the test did not exercise the monitor")
	}
	// What the flood added to the process, measured against the baseline
	// taken just before it: the test binary's own garbage (earlier tests,
	// in any order) is not the server's. Without the monitor the flood
	// adds 130 MiB or more.
	if grew := r.peak - min(r.peak, r.baseline); grew > floodGrowth {
		t.Fatalf("the flood added %d MiB to the process (baseline %d MiB, peak %d MiB), above %d MiB", grew>>20, r.baseline>>20, r.peak>>20, floodGrowth>>20)
	}
}

// BenchmarkFloodMemory reports the flood's peak process memory with the
// monitor (64 MiB threshold) and without it, in one run.
func BenchmarkFloodMemory(b *testing.B) {
	for _, bc := range []struct {
		name      string
		threshold int64
	}{{"monitor=64MiB", floodThreshold}, {"monitor=off", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			var peak uint64
			for i := 0; i < b.N; i++ {
				r := flood(b, bc.threshold)
				peak = max(peak, r.peak)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
		})
	}
}
