package e2e

import (
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/internal/wstest"
)

// TestDemoFeedReachesSilentClient is the newcomer's first experience: the
// shipped config.yaml, and a client that connects and sends nothing (as the
// deployed frontend does) receives demo data of every type.
func TestDemoFeedReachesSilentClient(t *testing.T) {
	p := startProc(t, nil)
	c := wstest.Dial(t, p.url("/ws"))
	if m := c.Next(t, 5*time.Second); m.Type != "welcome" {
		t.Fatalf("first frame %s", m.Raw)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for len(seen) < 4 && time.Now().Before(deadline) {
		m := c.Next(t, 5*time.Second)
		if m.Str("payload", "exchange") != "demo" || m.Payload["data"] == nil {
			t.Fatalf("unexpected frame %s", m.Raw)
		}
		seen[m.Type] = true
	}
	for _, typ := range []string{"trade", "ticker", "depth", "kline_1m"} {
		if !seen[typ] {
			t.Fatalf("no demo %s within 15s (saw %v)", typ, seen)
		}
	}
}

// TestSIGTERMClosesClients1001AndExits0 checks the process-level shutdown.
func TestSIGTERMClosesClients1001AndExits0(t *testing.T) {
	p := startProc(t, nil)
	clients := make([]*wstest.Client, 20)
	for i := range clients {
		clients[i] = wstest.Dial(t, p.url("/ws"))
		clients[i].NextOfType(t, "welcome", 5*time.Second)
	}
	if err := p.stop(t, 15*time.Second); err != nil {
		t.Fatalf("exit status: %v\n%s", err, p.Logs())
	}
	for i, c := range clients {
		cl, _ := c.WaitClose(t, 5*time.Second)
		if cl.Code != websocket.CloseGoingAway || cl.Reason != "Server shutting down" {
			t.Fatalf("client %d: %+v", i, cl)
		}
	}
}
