package proxy_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/internal/wstest"
)

// readGoroutines counts the server's goroutines inside a session's read
// loop (this process runs the server; the raw clients have no goroutines).
func readGoroutines() int {
	buf := make([]byte, 8<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "proxy.(*session).readLoop")
}

// nextText reads frames up to the next text frame and returns it.
func nextText(t *testing.T, r *wstest.Raw) string {
	t.Helper()
	for {
		f, err := r.ReadFrame(time.Now().Add(wait))
		if err != nil {
			t.Fatal(err)
		}
		if f.Op == wstest.OpText {
			return string(f.Payload)
		}
	}
}

// TestIdleConnectionsHoldNoReadGoroutine: with park_idle_readers (the
// default) an idle connection has no goroutine of its own on the server;
// one that sends something is served and goes back to none, a client close
// and a server shutdown still end parked connections with their close
// handshakes. With it off, every connection keeps a read goroutine.
func TestIdleConnectionsHoldNoReadGoroutine(t *testing.T) {
	const n = 100
	for _, park := range []bool{true, false} {
		name := "parked"
		if !park {
			name = "goroutine-per-connection"
		}
		t.Run(name, func(t *testing.T) {
			h := start(t, func(c *config.Config) { c.ParkIdleReaders = &park })
			clients := make([]*wstest.Raw, n)
			for i := range clients {
				clients[i] = wstest.DialRaw(t, h.url, 0)
				if m := nextText(t, clients[i]); !strings.Contains(m, `"welcome"`) {
					t.Fatalf("first frame %s, want welcome", m)
				}
			}
			if !park {
				wstest.Eventually(t, wait, "a read goroutine per connection", func() bool { return readGoroutines() >= n })
			} else {
				wstest.Eventually(t, wait, "no read goroutine for idle connections", func() bool { return readGoroutines() == 0 })

			}
			// Woken by what clients send: a ping and a subscribe each get
			// their replies, in order.
			for _, r := range clients {
				if err := r.WriteText(`{"type":"ping"}`); err != nil {
					t.Fatal(err)
				}
				if err := r.WriteText(`{"type":"subscribe","payload":{"exchange":["binance"],"dataTypes":["trade"],"symbols":["BTC/USDT"]}}`); err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range clients {
				if m := nextText(t, r); !strings.Contains(m, `"pong"`) {
					t.Fatalf("reply %s, want pong", m)
				}
				if m := nextText(t, r); !strings.Contains(m, `"subscribed"`) {
					t.Fatalf("reply %s, want subscribed", m)
				}
			}
			h.publish(t, "binance", "trade", "BTC/USDT", 1)
			for _, r := range clients {
				if m := nextText(t, r); !strings.Contains(m, `"seq":1`) {
					t.Fatalf("frame %s, want the published trade", m)
				}
			}
			if park {
				wstest.Eventually(t, wait, "idle again", func() bool { return readGoroutines() == 0 })
			}

			// WebSocket pings are answered with pongs, and a pong (a
			// heartbeat's answer, often a client's last frame for long)
			// leaves the connection parked, not in a blocked read.
			for _, r := range clients {
				if err := r.WriteFrame(0x89, []byte("hb")); err != nil {
					t.Fatal(err)
				}
				if err := r.WriteFrame(0x8a, nil); err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range clients {
				f, err := r.ReadFrame(time.Now().Add(wait))
				if err != nil || f.Op != wstest.OpPong || string(f.Payload) != "hb" {
					t.Fatalf("frame %d %q (%v), want the pong", f.Op, f.Payload, err)
				}
			}
			if park {
				wstest.Eventually(t, wait, "parked after ping and pong", func() bool { return readGoroutines() == 0 })
			}

			// A client's close is answered and ends its session.
			if err := clients[0].WriteClose(1000); err != nil {
				t.Fatal(err)
			}
			for {
				f, err := clients[0].ReadFrame(time.Now().Add(wait))
				if err != nil {
					t.Fatalf("no close reply: %v", err)
				}
				if f.Op == wstest.OpClose {
					if f.CloseCode() != 1000 {
						t.Fatalf("close reply %d, want 1000", f.CloseCode())
					}
					break
				}
			}
			wstest.Eventually(t, wait, "closed session removed", func() bool { return h.srv.Pool().Len() == n-1 })

			// Shutdown closes the parked ones with 1001 and returns in time.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- h.srv.Shutdown(ctx) }()
			for _, r := range clients[1:] {
				for {
					f, err := r.ReadFrame(time.Now().Add(wait))
					if err != nil {
						t.Fatalf("no close frame at shutdown: %v", err)
					}
					if f.Op == wstest.OpClose {
						if f.CloseCode() != 1001 {
							t.Fatalf("close %d at shutdown, want 1001", f.CloseCode())
						}
						break
					}
				}
				_ = r.WriteClose(1001)
			}
			if err := <-done; err != nil {
				t.Fatalf("shutdown: %v", err)
			}
		})
	}
}

// BenchmarkParkedWakeUp: a WebSocket ping to a parked connection and the
// pong back, one at a time: each is a wake-up, a read and parking again.
// B/op and allocs/op count the server and the raw client together.
func BenchmarkParkedWakeUp(b *testing.B) {
	h := start(b, func(c *config.Config) { // pings over the rate get no pong
		c.Limits.MessageRate = 1e9
		c.Limits.MessageBurst = 1e9
	})
	r := wstest.DialRaw(b, h.url, 0)
	pong := func() {
		for {
			f, err := r.ReadFrame(time.Now().Add(wait))
			if err != nil {
				b.Fatal(err)
			}
			if f.Op == wstest.OpPong {
				return
			}
		}
	}
	for range 10 { // past the welcome, with the pool warm
		if err := r.WriteFrame(0x89, []byte("hb")); err != nil {
			b.Fatal(err)
		}
		pong()
	}
	wstest.Eventually(b, wait, "parked", func() bool { return readGoroutines() == 0 })
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := r.WriteFrame(0x89, []byte("hb")); err != nil {
			b.Fatal(err)
		}
		pong()
	}
}
