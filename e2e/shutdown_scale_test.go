package e2e

import (
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// TestSIGTERMAtScaleUnderSaturation: thousands of clients on a demo feed fast
// enough to saturate the machine (the dispatcher backlogged, queues full);
// on SIGTERM the process stops intake, bounds the backlog drain, closes every
// client with 1001 and exits within shutdown_timeout. E2E_SCALE_CLIENTS
// sets the client count (default 5,000).
func TestSIGTERMAtScaleUnderSaturation(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if os.Getenv("CI_LOADED") == "1" {
		// Beside the CPU hog the clients of this process fall seconds
		// behind their sockets; a client's late pong then meets a closed
		// socket and the reset loses the 1001 still unread (an open
		// point: shutdown should half-close and drain, as after a
		// protocol error). The plain suite runs it.
		t.Skip("CI_LOADED=1: the test's own clients cannot keep up beside a CPU hog on every core")
	}
	// Opt-in: thousands of clients under the race detector take minutes
	// and, on a busy machine, the test's own clients fall behind their
	// sockets (see above). Run it with E2E_SCALE_CLIENTS=5000 (make
	// test-scale).
	n, err := strconv.Atoi(os.Getenv("E2E_SCALE_CLIENTS"))
	if err != nil || n <= 0 {
		t.Skip("E2E_SCALE_CLIENTS not set: the shutdown-at-scale test is opt-in (make test-scale)")
	}
	const grace = 10 * time.Second
	p := startProcBin(t, plainBinary(t), []string{
		"WSPROXY_MAX_CONNECTIONS=" + strconv.Itoa(n+1000),
		"WSPROXY_SOURCES_DEMO_INTERVAL=20ms",
		"WSPROXY_SHUTDOWN_TIMEOUT=" + grace.String(),
		"WSPROXY_LIMITS_CONNECT_RATE=0",
		"WSPROXY_LOG_LEVEL=warn",
	})
	type client struct {
		conn  *websocket.Conn
		data  atomic.Int64
		code  int
		other error
	}
	clients := make([]*client, n)
	var (
		readers sync.WaitGroup
		dialers sync.WaitGroup
		next    atomic.Int64
		dialErr atomic.Pointer[error]
	)
	d := websocket.Dialer{HandshakeTimeout: 60 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 256}
	for w := 0; w < 50; w++ {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || dialErr.Load() != nil {
					return
				}
				// A handshake may fail on a machine this busy (the server
				// gives it limits.handshake_timeout): dial again, as a
				// browser would, a few times.
				var conn *websocket.Conn
				var err error
				for try := 0; try < 5; try++ {
					if conn, _, err = d.Dial(p.url("/ws"), nil); err == nil {
						break
					}
					time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
				}
				if err != nil {
					dialErr.Store(&err)
					return
				}
				c := &client{conn: conn}
				clients[i] = c
				readers.Add(1)
				go func() {
					defer readers.Done()
					for {
						_, r, err := conn.NextReader()
						if err != nil {
							var ce *websocket.CloseError
							if errors.As(err, &ce) {
								c.code = ce.Code
							} else {
								c.other = err
							}
							return
						}
						if _, err := io.Copy(io.Discard, r); err != nil {
							c.other = err
							return
						}
						c.data.Add(1)
					}
				}()
			}
		}()
	}
	dialers.Wait()
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				_ = c.conn.Close()
			}
		}
		readers.Wait()
	})
	if e := dialErr.Load(); e != nil {
		t.Fatalf("dial: %v", *e)
	}
	// Every client is being fed (welcome and data).
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < n; i++ {
		for clients[i].data.Load() < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("client %d has %d frames after 60s", i, clients[i].data.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var st struct {
		Dataflow struct {
			Dropped uint64 `json:"dropped"`
			Queued  int    `json:"queued"`
		} `json:"dataflow"`
		Pool struct {
			Queued int64             `json:"queuedMessages"`
			Shed   map[string]uint64 `json:"shed"`
		} `json:"pool"`
	}
	getJSON(t, p.httpURL("/api/websocket/stats"), &st)

	start := time.Now()
	if err := p.stop(t, grace+10*time.Second); err != nil {
		t.Fatalf("exit status: %v\n%s", err, p.Logs())
	}
	took := time.Since(start)
	readers.Wait()
	got1001, other := 0, 0
	var firstBad string
	for i, c := range clients {
		if c.code == websocket.CloseGoingAway {
			got1001++
			continue
		}
		other++
		if firstBad == "" {
			firstBad = "client " + strconv.Itoa(i) + ": close " + strconv.Itoa(c.code) + ", error " + errString(c.other)
		}
	}
	t.Logf("%d clients; before SIGTERM: dispatcher backlog %d, dropped %d, frames queued %d, shed %v; exit %s after SIGTERM (grace %s); %d closed 1001",
		n, st.Dataflow.Queued, st.Dataflow.Dropped, st.Pool.Queued, st.Pool.Shed, took.Round(time.Millisecond), grace, got1001)
	if logs := p.Logs(); logs != "" {
		t.Logf("wsproxy logs:\n%s", logs)
	}
	if took > grace {
		t.Errorf("exit took %s, shutdown_timeout %s", took, grace)
	}
	if other != 0 {
		t.Errorf("%d of %d clients did not receive 1001; first: %s", other, n, firstBad)
	}
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}
