package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/internal/wstest"
)

func httpDo(t testing.TB, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminListenTokenAndDrain runs the binary as an operator would: admin
// API on its own address, a token, then a drain that empties the node.
func TestAdminListenTokenAndDrain(t *testing.T) {
	adminAddr := freeAddr(t)
	const token = "e2e-token"
	p := startProc(t, []string{"WSPROXY_ADMIN_LISTEN=" + adminAddr, "WSPROXY_ADMIN_TOKEN=" + token})
	adm := "http://" + adminAddr
	wstest.Eventually(t, 10*time.Second, "admin listener", func() bool {
		resp, err := http.Get(adm + "/livez")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	c := wstest.Dial(t, p.url("/ws"))
	c.NextOfType(t, "welcome", 5*time.Second)
	c.NextOfType(t, "trade", 10*time.Second) // the shipped config runs the demo feed

	if code, _ := httpDo(t, "GET", "http://"+p.addr+"/metrics", ""); code != 404 {
		t.Fatalf("main port serves /metrics: %d", code)
	}
	if code, body := httpDo(t, "GET", "http://"+p.addr+"/api/websocket/status", ""); code != 200 || !strings.Contains(body, `"endpoint":"/ws"`) {
		t.Fatalf("legacy status on main port: %d %s", code, body)
	}
	code, body := httpDo(t, "GET", adm+"/metrics", "")
	if code != 200 || !strings.Contains(body, `wsproxy_source_up{source="demo",type="demo"} 1`) ||
		!strings.Contains(body, "wsproxy_delivery_latency_seconds_bucket") || !strings.Contains(body, "wsproxy_connections_active 1") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	if code, _ := httpDo(t, "POST", adm+"/api/websocket/drain?window=200ms", ""); code != 401 {
		t.Fatalf("drain without token: %d", code)
	}
	code, body = httpDo(t, "POST", adm+"/api/websocket/drain?window=200ms", token)
	var st struct {
		Draining    bool  `json:"draining"`
		Connections int   `json:"connections"`
		WindowMs    int64 `json:"windowMs"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || !st.Draining || st.Connections != 1 || st.WindowMs != 200 {
		t.Fatalf("drain: %d %s", code, body)
	}
	if cl, _ := c.WaitClose(t, 5*time.Second); cl.Code != websocket.CloseGoingAway || cl.Reason != "Server shutting down" {
		t.Fatalf("drained client: %+v", cl)
	}
	if code, _ := httpDo(t, "GET", adm+"/readyz", ""); code != 503 {
		t.Fatalf("readyz after drain: %d", code)
	}
	if _, err := wstest.TryDial(p.url("/ws"), nil); err == nil {
		t.Fatal("a drained node accepted a WebSocket upgrade")
	}
	if err := p.stop(t, 15*time.Second); err != nil {
		t.Fatalf("exit after drain: %v\n%s", err, p.Logs())
	}
	if !strings.Contains(p.Logs(), `"drain requested"`) {
		t.Fatalf("operator action not logged:\n%s", p.Logs())
	}
}
