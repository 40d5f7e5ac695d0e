package e2e

import (
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"wsproxy/internal/wstest"
)

// TestRollbackRehearsal follows the README's rollback: clients on wsproxy,
// the load balancer switched back to the legacy server, then
// POST /api/websocket/drain: every client is closed with 1001 within the
// drain window, reconnects (to the legacy server) and receives data again,
// while the drained node refuses new upgrades.
func TestRollbackRehearsal(t *testing.T) {
	node := startProc(t, nil)
	old := startProc(t, nil, "legacy")

	const n = 20
	clients := make([]*wstest.Client, n)
	for i := range clients {
		clients[i] = wstest.Dial(t, node.url("/ws"))
		clients[i].NextOfType(t, "welcome", 5*time.Second)
	}

	start := time.Now()
	status, body, err := fasthttp.Post(nil, "http://"+node.addr+"/api/websocket/drain?window=2s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if status == fasthttp.StatusNotFound {
		t.Skip("SKIPPING ROLLBACK REHEARSAL: this build has no POST /api/websocket/drain")
	}
	if status != fasthttp.StatusOK && status != fasthttp.StatusAccepted {
		t.Fatalf("drain: %d %s", status, body)
	}

	for i, c := range clients {
		cl, _ := c.WaitClose(t, 30*time.Second)
		if cl.Code != websocket.CloseGoingAway {
			t.Fatalf("client %d closed with %+v, want 1001", i, cl)
		}
		// The frontend reconnects; the load balancer now sends it to the
		// legacy server.
		back := wstest.Dial(t, old.url("/ws"))
		back.NextOfType(t, "welcome", 5*time.Second)
		back.NextOfType(t, "trade", 10*time.Second)
	}
	took := time.Since(start)
	if _, err := wstest.TryDial(node.url("/ws"), nil); err == nil {
		t.Fatal("a drained node accepted a new WebSocket upgrade")
	}
	t.Logf("%d clients moved back to the legacy server in %s (drain window 2s)", n, took.Round(time.Millisecond))
}
