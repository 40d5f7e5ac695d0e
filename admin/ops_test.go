package admin_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/admin"
	"wsproxy/config"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
	"wsproxy/pool"
	"wsproxy/proxy"
)

// TestFlushWritesHeldBatches holds frames with a long batch.flush_interval:
// nothing reaches the client until POST /api/websocket/flush writes them.
func TestFlushWritesHeldBatches(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Batch.FlushInterval = time.Hour })
	a, b := e.dial(t), e.dial(t)
	const n = 10 // under batch.max_messages, so nothing starts a write
	e.publish(t, n, 0)
	var st observe.Stats
	wait5(t, "frames dispatched", func() bool {
		getJSON(t, e.url("/api/websocket/stats"), &st)
		return st.Pool.QueuedMessages+int64(st.Pool.TotalMessagesSent) == 2*n
	})
	// A writer still finishing the welcome when the first frames arrived
	// may have taken them along; everything else waits for the interval.
	held := st.Pool.QueuedMessages
	if held < n {
		t.Fatalf("only %d of %d frames held by the flush interval", held, 2*n)
	}
	var r pool.FlushResult
	if code := call(t, http.MethodPost, e.url("/api/websocket/flush"), "", "", &r); code != 200 {
		t.Fatalf("flush: %d", code)
	}
	if r.Connections < 1 || r.Messages != int(held) {
		t.Fatalf("flush = %+v, want the %d held frames", r, held)
	}
	receive(t, a, n)
	receive(t, b, n)
	wait5(t, "queues empty", func() bool {
		getJSON(t, e.url("/api/websocket/stats"), &st)
		return st.Pool.QueuedMessages == 0 && st.Pool.TotalMessagesSent == 2*n
	})
	// Nothing pending: a second flush has nothing to do.
	call(t, http.MethodPost, e.url("/api/websocket/flush"), "", "", &r)
	if r.Connections != 0 || r.Messages != 0 {
		t.Fatalf("second flush = %+v", r)
	}
}

func TestConnectionsListPagesAndKick(t *testing.T) {
	e := start(t, nil)
	first := e.dial(t)
	second := e.dial(t)
	second.Send(t, `{"type":"subscribe","payload":{"exchange":["Binance"],"symbols":["btc-usdt"],"dataTypes":["trade"]}}`)
	second.NextOfType(t, "subscribed", wait)
	third := e.dial(t)
	e.publish(t, 5, 0)
	receive(t, first, 5)
	receive(t, second, 5)
	receive(t, third, 5)
	third.Send(t, `not json`)
	third.NextOfType(t, "error", wait)

	var page admin.ConnectionPage
	wait5(t, "counters settle", func() bool {
		getJSON(t, e.url("/api/websocket/connections"), &page)
		if len(page.Connections) != 3 || page.Connections[2].Errors != 1 {
			return false
		}
		for _, ci := range page.Connections {
			if ci.MessagesSent != 5 {
				return false
			}
		}
		return true
	})
	if page.Total != 3 || page.Offset != 0 || page.Limit != 100 {
		t.Fatalf("page = %+v", page)
	}
	for i, ci := range page.Connections {
		if ci.State != "open" || ci.MessagesSent != 5 || ci.BytesSent == 0 || ci.Remote == "" || ci.ConnectedAt == 0 || ci.LastActivity < ci.ConnectedAt {
			t.Fatalf("connection %d = %+v", i, ci)
		}
		if i > 0 && ci.ConnectedAt < page.Connections[i-1].ConnectedAt {
			t.Fatal("listing not ordered by connection time")
		}
	}
	withFilter := page.Connections[1]
	if len(withFilter.Filters) != 1 || withFilter.ReceivesAll ||
		jsonText(withFilter.Filters[0]) != `{"filterId":"1","exchange":["binance"],"symbols":["BTCUSDT"],"dataTypes":["trade"]}` {
		t.Fatalf("filters of the subscribed client = %+v", withFilter)
	}
	if !page.Connections[0].ReceivesAll || len(page.Connections[0].Filters) != 0 {
		t.Fatalf("unfiltered client = %+v", page.Connections[0])
	}

	// Paging is stable: offset 1, limit 1 is the second connection.
	var p2 admin.ConnectionPage
	getJSON(t, e.url("/api/websocket/connections?offset=1&limit=1"), &p2)
	if p2.Total != 3 || len(p2.Connections) != 1 || p2.Connections[0].ID != withFilter.ID {
		t.Fatalf("page 2 = %+v", p2)
	}
	getJSON(t, e.url("/api/websocket/connections?offset=5"), &p2)
	if p2.Total != 3 || len(p2.Connections) != 0 {
		t.Fatalf("page past the end = %+v", p2)
	}
	var one admin.ConnInfo
	if code := getJSON(t, e.url("/api/websocket/connections/"+withFilter.ID), &one); code != 200 || one.ID != withFilter.ID {
		t.Fatalf("GET one: %d %+v", code, one)
	}
	for _, bad := range []string{"offset=-1", "limit=0", "limit=1001", "limit=x"} {
		var eb map[string]any
		if code := getJSON(t, e.url("/api/websocket/connections?"+bad), &eb); code != 400 || eb["error"] == nil {
			t.Fatalf("%s: %d %v", bad, code, eb)
		}
	}

	// DELETE closes that one client with 1000; the others stay.
	var kick map[string]any
	if code := call(t, http.MethodDelete, e.url("/api/websocket/connections/"+withFilter.ID), "", "", &kick); code != 200 || kick["closed"] != true {
		t.Fatalf("DELETE: %d %v", code, kick)
	}
	cl, _ := second.WaitClose(t, wait)
	if cl.Code != websocket.CloseNormalClosure {
		t.Fatalf("kicked client closed with %+v, want 1000", cl)
	}
	wait5(t, "listing shrinks", func() bool {
		getJSON(t, e.url("/api/websocket/connections"), &page)
		return page.Total == 2
	})
	for _, ci := range page.Connections {
		if ci.ID == withFilter.ID {
			t.Fatal("kicked connection still listed")
		}
	}
	first.Send(t, `{"type":"ping"}`)
	first.NextOfType(t, "pong", wait)

	var eb map[string]any
	if code := call(t, http.MethodDelete, e.url("/api/websocket/connections/"+withFilter.ID), "", "", &eb); code != 404 {
		t.Fatalf("DELETE of a gone connection: %d %v", code, eb)
	}
	if code := call(t, http.MethodDelete, e.url("/api/websocket/connections/nope"), "", "", &eb); code != 404 {
		t.Fatalf("DELETE unknown: %d", code)
	}
	if code := getJSON(t, e.url("/api/websocket/connections/nope"), &eb); code != 404 {
		t.Fatalf("GET unknown: %d", code)
	}
}

// TestDrainClosesGraduallyAndRefusesNewClients is the rollback lever: new
// upgrades get 503, readiness fails, and clients are closed with 1001
// spread over the window.
func TestDrainClosesGraduallyAndRefusesNewClients(t *testing.T) {
	e := start(t, nil)
	const n = 10
	clients := make([]*wstest.Client, n)
	for i := range clients {
		clients[i] = e.dial(t)
	}
	if code := getJSON(t, e.url("/readyz"), &map[string]any{}); code != 200 {
		t.Fatalf("readyz before drain: %d", code)
	}
	const window = time.Second
	begin := time.Now()
	var st proxy.DrainStatus
	if code := call(t, http.MethodPost, e.url("/api/websocket/drain"), "", `{"window":"1s"}`, &st); code != 200 {
		t.Fatalf("drain: %d", code)
	}
	answered := time.Since(begin)
	if !st.Draining || st.Connections != n || st.WindowMs != 1000 {
		t.Fatalf("drain answer = %+v", st)
	}
	if answered > window/2 {
		t.Fatalf("drain answered after %s: it must not wait for the closes", answered)
	}

	// New upgrades are refused while draining.
	if _, err := wstest.TryDial("ws://"+e.addr+"/ws", nil); err == nil || err != websocket.ErrBadHandshake {
		t.Fatalf("upgrade during drain: %v, want a refused handshake", err)
	}
	resp, err := http.Get(e.url("/ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /ws while draining: %d", resp.StatusCode)
	}
	var h observe.HealthStatus
	if code := getJSON(t, e.url("/api/websocket/health"), &h); code != 200 || h.Status != "degraded" || !h.Draining {
		t.Fatalf("health while draining: %d %+v", code, h)
	}
	var probe map[string]any
	if code := getJSON(t, e.url("/readyz"), &probe); code != 503 {
		t.Fatalf("readyz while draining: %d %v", code, probe)
	}
	if code := getJSON(t, e.url("/livez"), &probe); code != 200 {
		t.Fatalf("livez while draining: %d", code)
	}
	// A second drain reports the one under way.
	var again proxy.DrainStatus
	call(t, http.MethodPost, e.url("/api/websocket/drain"), "", `{"window":"5m"}`, &again)
	if !again.Draining || again.WindowMs != 1000 || again.Connections != n {
		t.Fatalf("second drain = %+v", again)
	}

	// Each client's close is timed as it happens.
	closedAt := make([]time.Time, n)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, ok := c.TryNext(5 * time.Second); !ok {
					break // closed (or silent for 5s: WaitClose below reports it)
				}
			}
			closedAt[i] = time.Now()
		}()
	}
	wg.Wait()
	for i, c := range clients {
		cl, _ := c.WaitClose(t, wait)
		if cl.Code != websocket.CloseGoingAway || cl.Reason != "Server shutting down" {
			t.Fatalf("client %d closed with %+v", i, cl)
		}
	}
	first, last := closedAt[0], closedAt[0]
	for _, at := range closedAt {
		if at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	// Spread: ten closes 100 ms apart span about 900 ms; all at once would
	// span a few milliseconds.
	if spread := last.Sub(first); spread < window/2 {
		t.Fatalf("closes spread over %s, want most of %s", spread, window)
	}
	var ds proxy.DrainStatus
	wait5(t, "drain empties the node", func() bool {
		getJSON(t, e.url("/api/websocket/drain"), &ds)
		return ds.Remaining == 0
	})
	if !ds.Draining || ds.Connections != n {
		t.Fatalf("drain state = %+v", ds)
	}
}

func TestDrainRequestValidation(t *testing.T) {
	tests := []struct {
		name, query, body string
		code              int
		windowMs          int64
	}{
		{"default window from config", "", "", 200, 250},
		{"query window", "?window=2s", "", 200, 2000},
		{"body window", "", `{"window":"1500ms"}`, 200, 1500},
		{"body windowMs", "", `{"windowMs":0}`, 200, 0},
		{"bad duration", "?window=soon", "", 400, 0},
		{"negative", "", `{"window":"-1s"}`, 400, 0},
		{"too long", "", `{"window":"48h"}`, 400, 0},
		{"not json", "", `window=1s`, 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, func(c *config.Config) { c.Admin.DrainWindow = 250 * time.Millisecond })
			var v map[string]any
			code := call(t, http.MethodPost, e.url("/api/websocket/drain"+tt.query), "", tt.body, &v)
			if code != tt.code {
				t.Fatalf("status %d, want %d: %v", code, tt.code, v)
			}
			if code == 200 && v["windowMs"].(float64) != float64(tt.windowMs) {
				t.Fatalf("windowMs %v, want %d", v["windowMs"], tt.windowMs)
			}
			if code == 400 && (v["error"] == nil || e.srv.Draining()) {
				t.Fatalf("bad request must not drain: %v", v)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := start(t, nil)
	tests := []struct{ method, path string }{
		{"POST", "/api/websocket/stats"}, {"POST", "/api/websocket/health"}, {"POST", "/api/websocket/metrics"},
		{"GET", "/api/websocket/flush"}, {"PUT", "/api/websocket/drain"}, {"POST", "/api/websocket/connections"},
		{"POST", "/api/websocket/connections/x"}, {"POST", "/metrics"}, {"DELETE", "/readyz"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var v map[string]any
			if code := call(t, tt.method, e.url(tt.path), "", "", &v); code != http.StatusMethodNotAllowed || v["error"] == nil {
				t.Fatalf("%d %v", code, v)
			}
		})
	}
}
