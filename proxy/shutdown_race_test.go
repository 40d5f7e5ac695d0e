package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/proxy"
)

// TestShutdownClosesConnectionsOpenedDuringIt: connections whose upgrade
// was accepted just before Shutdown stopped intake, but which registered
// after Shutdown had collected the connections to close, are closed with
// 1001 too; Shutdown does not wait for them until its deadline, nor for
// upgrades fasthttp answered but never handed over. Clients
// dial continuously while Shutdown runs, in several rounds, so that some
// upgrades fall into that window.
func TestShutdownClosesConnectionsOpenedDuringIt(t *testing.T) {
	const rounds, dialers = 12, 16
	for round := 1; round <= rounds; round++ {
		in := dataflow.NewInProcess("test")
		srv, err := proxy.New(config.Config{}, zerolog.Nop(), in)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.Serve(ln)
		wstest.Eventually(t, wait, "source attached", func() bool { return in.Status().Connected })
		url := "ws://" + ln.Addr().String() + "/ws"

		var welcomed, goingAway atomic.Int64
		var mu sync.Mutex
		var failures []string
		fail := func(format string, args ...any) {
			mu.Lock()
			failures = append(failures, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < dialers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := websocket.Dialer{HandshakeTimeout: wait}
				for {
					select {
					case <-stop:
						return
					default:
					}
					ws, _, err := d.Dial(url, nil)
					if err != nil {
						continue // refused once intake stopped
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer ws.Close()
						_ = ws.SetReadDeadline(time.Now().Add(3 * wait))
						// Upgraded: the welcome may come first, or, for a
						// connection registered while Shutdown closes
						// them, the 1001 alone.
						welcomed.Add(1)
						for {
							if _, _, err := ws.ReadMessage(); err != nil {
								var ce *websocket.CloseError
								if errors.As(err, &ce) && ce.Code == websocket.CloseGoingAway {
									goingAway.Add(1)
								} else {
									fail("ended with %v, want 1001", err)
								}
								return
							}
						}
					}()
				}
			}()
		}
		wstest.Eventually(t, wait, "clients connected", func() bool { return welcomed.Load() >= 4*dialers })
		ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
		begun := time.Now()
		err = srv.Shutdown(ctx)
		cancel()
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: Shutdown after %s: %v (%d clients upgraded, %d closed with 1001; failures %v)",
				round, time.Since(begun).Round(time.Millisecond), err, welcomed.Load(), goingAway.Load(), failures)
		}
		if len(failures) > 0 || welcomed.Load() != goingAway.Load() {
			t.Fatalf("round %d: %d upgraded, %d closed with 1001; first failures: %v",
				round, welcomed.Load(), goingAway.Load(), failures[:min(len(failures), 3)])
		}
	}
}
