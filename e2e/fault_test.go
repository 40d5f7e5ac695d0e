package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsproxy/internal/rlimit"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
)

// init lifts the soft open-file limit to the hard one (TestMain has not
// run yet): the many-clients test holds thousands of sockets, and the
// wsproxy processes started here inherit the limit.
func init() { rlimit.RaiseOpenFiles(zerolog.Nop()) }

var (
	plainOnce sync.Once
	plainBin  string
	plainErr  error
)

// plainBinary builds wsproxy without the race detector, whose limit of
// 8128 live goroutines a server with thousands of connections exceeds.
func plainBinary(t testing.TB) string {
	t.Helper()
	plainOnce.Do(func() {
		plainBin = filepath.Join(filepath.Dir(binary), "wsproxy-plain")
		out, err := exec.Command("go", "build", "-o", plainBin, "wsproxy").CombinedOutput()
		if err != nil {
			plainErr = fmt.Errorf("build: %w\n%s", err, out)
		}
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainBin
}

// floodClient reads demo trades as fast as it can and checks that each
// symbol's trade ids are contiguous.
type floodClient struct {
	conn   *websocket.Conn
	last   map[string]int64 // symbol → last trade id
	trades atomic.Int64
	gap    string
	close  *websocket.CloseError
	err    error
}

func (fc *floodClient) run() {
	var m struct {
		Type    string `json:"type"`
		Payload struct {
			Symbol string `json:"symbol"`
			Data   struct {
				ID string `json:"id"`
			} `json:"data"`
		} `json:"payload"`
	}
	for {
		_, b, err := fc.conn.ReadMessage()
		if err != nil {
			if !errors.As(err, &fc.close) {
				fc.err = err
			}
			return
		}
		m.Type = ""
		if json.Unmarshal(b, &m) != nil || m.Type != "trade" {
			continue
		}
		id, err := strconv.ParseInt(m.Payload.Data.ID, 10, 64)
		if err != nil {
			fc.gap = "bad trade id in " + string(b)
			continue
		}
		if prev, ok := fc.last[m.Payload.Symbol]; ok && id != prev+1 && fc.gap == "" {
			fc.gap = fmt.Sprintf("%s: trade %d after %d", m.Payload.Symbol, id, prev)
		}
		fc.last[m.Payload.Symbol] = id
		fc.trades.Add(1)
	}
}

// TestSIGTERMUnderLoad: clients receive a continuous flood; on SIGTERM each
// receives an unbroken run of trades up to the last one the feed produced
// (everything queued for it), then close 1001, and the process exits within
// its shutdown grace.
func TestSIGTERMUnderLoad(t *testing.T) {
	const grace = 5 * time.Second
	p := startProc(t, []string{
		"WSPROXY_SOURCES_DEMO_INTERVAL=1ms",
		"WSPROXY_QUEUE_MAX_MESSAGES=100000",
		"WSPROXY_QUEUE_MAX_BYTES=104857600",
		"WSPROXY_SHUTDOWN_TIMEOUT=" + grace.String(),
	})
	const n = 20
	clients := make([]*floodClient, n)
	var wg sync.WaitGroup
	for i := range clients {
		c, _, err := websocket.DefaultDialer.Dial(p.url("/ws"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		clients[i] = &floodClient{conn: c, last: map[string]int64{}}
		wg.Add(1)
		go func() { defer wg.Done(); clients[i].run() }()
	}
	// Let the flood run until every client has a good amount of it.
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range clients {
		for {
			got := c.trades.Load()
			if got >= 300 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("flood too slow: a client has %d trades", got)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	start := time.Now()
	if err := p.stop(t, grace+5*time.Second); err != nil {
		t.Fatalf("exit status: %v\n%s", err, p.Logs())
	}
	took := time.Since(start)
	wg.Wait()
	// The server's own bound is the grace; the margin covers signal
	// delivery, process teardown and reaping on a busy machine.
	if took > grace+2*time.Second {
		t.Fatalf("exit took %s, grace %s", took, grace)
	}
	final := map[string]int64{}
	var total int64
	for i, c := range clients {
		if c.err != nil || c.close == nil || c.close.Code != websocket.CloseGoingAway || c.close.Text != "Server shutting down" {
			t.Fatalf("client %d ended with %v / %+v, want close 1001", i, c.err, c.close)
		}
		if c.gap != "" {
			t.Fatalf("client %d: gap %s", i, c.gap)
		}
		for sym, id := range c.last {
			if id > final[sym] {
				final[sym] = id
			}
		}
		total += c.trades.Load()
	}
	for i, c := range clients {
		for sym, id := range final {
			if c.last[sym] != id {
				t.Fatalf("client %d: last %s trade %d, others got up to %d: queued frames lost at shutdown", i, sym, c.last[sym], id)
			}
		}
	}
	t.Logf("%d clients, %d trades received in all, every client up to %v, exit %s after SIGTERM", n, total, final, took.Round(time.Millisecond))
}

// TestFiveThousandClientsAtOnce: 5,000 clients connect in the same instant;
// every one is welcomed, receives live data, and leaves cleanly.
func TestFiveThousandClientsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 5000
	p := startProcBin(t, plainBinary(t), []string{
		"WSPROXY_MAX_CONNECTIONS=6000",
		"WSPROXY_SOURCES_DEMO_SYMBOLS=BTC/USDT",
		"WSPROXY_SOURCES_DEMO_INTERVAL=100ms",
		"WSPROXY_LOG_LEVEL=warn",
	})
	var (
		ready, gotData atomic.Int64
		failures       = make(chan error, n)
		conns          = make([]*websocket.Conn, n)
		wg             sync.WaitGroup
		gate           = make(chan struct{})
	)
	d := websocket.Dialer{HandshakeTimeout: 60 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 256}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			c, _, err := d.Dial(p.url("/ws"), nil)
			if err != nil {
				failures <- fmt.Errorf("dial: %w", err)
				return
			}
			conns[i] = c
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			_, b, err := c.ReadMessage()
			if err != nil || !json.Valid(b) || !bytesContains(b, `"type":"welcome"`) {
				failures <- fmt.Errorf("welcome: %q %v", b, err)
				return
			}
			ready.Add(1)
			for {
				_, b, err := c.ReadMessage()
				if err != nil {
					failures <- fmt.Errorf("data: %w", err)
					return
				}
				if bytesContains(b, `"exchange":"demo"`) {
					gotData.Add(1)
					return
				}
			}
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	took := time.Since(start)
	close(failures)
	for err := range failures {
		t.Fatalf("%d/%d welcomed, %d with data; first failure: %v", ready.Load(), n, gotData.Load(), err)
	}
	if got := activeConnections(t, p); got != n {
		t.Fatalf("server reports %d active connections, want %d", got, n)
	}
	for _, c := range conns {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = c.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for activeConnections(t, p) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still active 30s after the clients left", activeConnections(t, p))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d clients connected at once: all welcomed and fed live data in %s", n, took.Round(time.Millisecond))
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }

func activeConnections(t testing.TB, p *proc) int64 {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/websocket/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Connection struct {
			Active int64 `json:"activeConnections"`
		} `json:"connection"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Connection.Active
}
