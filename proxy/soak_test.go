package proxy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/config"
	"wsproxy/dataflow"
)

// TestSoak churns clients against a server under a steady feed: clients
// connect, subscribe (or not), read for a while, sometimes stop reading
// (slow consumers), sometimes send garbage, and leave in every way (close
// handshake, abrupt socket close). When they have all gone, the server's
// goroutines and live heap must be back at their baseline: nothing leaks
// per connection. WSPROXY_SOAK sets the duration (make soak: 5m); the
// default keeps CI short.
func TestSoak(t *testing.T) {
	dur := 15 * time.Second
	if v := os.Getenv("WSPROXY_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("WSPROXY_SOAK=%q: %v", v, err)
		}
		dur = d
	} else if testing.Short() {
		dur = 3 * time.Second
	}
	h := start(t, func(c *config.Config) {
		c.Queue.MaxMessages = 50
		c.WriteTimeout = 2 * time.Second
		c.HeartbeatInterval = 500 * time.Millisecond
		c.ConnectionTimeout = 3 * time.Second
	})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	// The feed: a few hundred messages a second over several symbols.
	var published atomic.Uint64
	var feed sync.WaitGroup
	feed.Add(1)
	go func() {
		defer feed.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		types := []string{"trade", "ticker", "depth", "kline_1m"}
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			md := dataflow.MarketData{Exchange: "soak", Type: types[i%4], Symbol: fmt.Sprintf("S%d/USDT", i%7),
				Timestamp: time.Now().UnixMilli(), Data: []byte(`{"price":"1.5","seq":` + fmt.Sprint(i) + `}`)}
			if h.in.Output(ctx, md) == nil {
				published.Add(1)
			}
		}
	}()

	churn := func(until time.Time, workers int) (sessions int64) {
		var n atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for time.Now().Before(until) {
					soakSession(t, h.url, rng)
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		return n.Load()
	}
	settle := func() (goroutines int, heap uint64) {
		deadline := time.Now().Add(30 * time.Second)
		for h.srv.Pool().Len() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections left after the clients went", h.srv.Pool().Len())
			}
			time.Sleep(10 * time.Millisecond)
		}
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}

	// Goroutine baseline: the idle server with its feed. Heap baseline:
	// after a warm-up (pools, maps and buffers at their working size).
	g0, _ := settle()
	churn(time.Now().Add(time.Second), 8)
	_, heap0 := settle()
	t.Logf("baseline: %d goroutines, heap %.1f MiB", g0, float64(heap0)/(1<<20))

	sessions := churn(time.Now().Add(dur), 32)
	peak := h.srv.Stats().Pool
	// +2: helpers started once per process on first use (fasthttp's date
	// ticker); a per-connection leak would show as hundreds.
	g1, heap1 := settleGoroutines(t, settle, g0+2)
	stop()
	feed.Wait()
	t.Logf("soak %s: %d client sessions, %d messages published, %d sent, %d connections in all; after: %d goroutines (baseline %d), heap %.1f MiB (baseline %.1f MiB)",
		dur, sessions, published.Load(), peak.TotalMessagesSent, peak.TotalConnections, g1, g0, float64(heap1)/(1<<20), float64(heap0)/(1<<20))
	if heap1 > heap0+max(heap0/4, 4<<20) {
		t.Fatalf("heap grew from %d to %d bytes over the soak", heap0, heap1)
	}
}

// settleGoroutines waits (up to 30s: fasthttp keeps idle workers for 10s)
// for the goroutine count to come down to want and returns it with the heap.
func settleGoroutines(t *testing.T, settle func() (int, uint64), want int) (int, uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, heap := settle()
		if g <= want {
			return g, heap
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after the soak, baseline %d:\n%s", g, want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// soakSession is one client's life, chosen at random.
func soakSession(t *testing.T, url string, rng *rand.Rand) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Errorf("dial: %v", err)
		return
	}
	defer c.Close()
	switch rng.IntN(4) {
	case 0: // subscribe to part of the feed
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","payload":{"exchange":["soak"],"symbols":["S1/USDT","S2/USDT"],"dataTypes":["trade","kline"]}}`))
	case 1: // garbage and a few valid requests
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":`))
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"getStats"}`))
		_ = c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	}
	life := time.Duration(20+rng.IntN(200)) * time.Millisecond
	if rng.IntN(5) == 0 {
		// Slow consumer: never reads; the server sheds its frames.
		time.Sleep(life)
	} else {
		_ = c.SetReadDeadline(time.Now().Add(life))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
	}
	if rng.IntN(2) == 0 {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	}
}
