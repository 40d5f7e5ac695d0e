package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsproxy/internal/wstest"
)

// TestFrontendSameOrigin runs the binary as the frontend meets it: a built
// frontend from static.dir, the collector's REST API through upstream.url
// (a real HTTP server) and /ws on one origin, configured by environment.
func TestFrontendSameOrigin(t *testing.T) {
	collector := http.NewServeMux()
	answer := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, body)
		}
	}
	for _, path := range []string{"GET /api/stats", "GET /api/adapters", "GET /api/subscriptions",
		"POST /api/subscriptions", "DELETE /api/subscriptions", "GET /api/pubsub/status",
		"POST /api/pubsub/toggle", "GET /health"} {
		collector.HandleFunc(path, answer(`{"answered":"`+path+`"}`))
	}
	collector.HandleFunc("GET /api/stats/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: {\"seq\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	})
	up := httptest.NewServer(collector)
	t.Cleanup(func() { up.CloseClientConnections(); up.Close() })

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<title>built frontend</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, []string{"WSPROXY_UPSTREAM_URL=" + up.URL, "WSPROXY_STATIC_DIR=" + dir})
	base := "http://" + p.addr
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{"id":"1"}`))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	ws := wstest.Dial(t, p.url("/ws"))
	if m := ws.Next(t, 5*time.Second); m.Type != "welcome" {
		t.Fatalf("first frame %s", m.Raw)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/stats"}, {"GET", "/api/adapters"}, {"GET", "/api/subscriptions"},
		{"POST", "/api/subscriptions"}, {"DELETE", "/api/subscriptions"}, {"GET", "/api/pubsub/status"},
		{"POST", "/api/pubsub/toggle"}, {"GET", "/health"},
	} {
		if status, body := call(c.method, c.path); status != 200 || !strings.Contains(body, `"answered":"`+c.method+" "+c.path+`"`) {
			t.Fatalf("%s %s = %d %s, want the collector's answer", c.method, c.path, status, body)
		}
	}
	for _, path := range []string{"/", "/views/subscriptions"} {
		if status, body := call("GET", path); status != 200 || !strings.Contains(body, "built frontend") {
			t.Fatalf("GET %s = %d %.80s, want the built frontend", path, status, body)
		}
	}

	resp, err := http.Get(base + "/api/stats/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	for i := range 3 {
		select {
		case l := <-lines:
			if l != fmt.Sprintf(`data: {"seq":%d}`, i) {
				t.Fatalf("event %d = %q", i, l)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d not received", i)
		}
	}
	// The demo feed keeps flowing to the WebSocket client meanwhile.
	if m := ws.Next(t, 5*time.Second); m.Str("payload", "exchange") != "demo" {
		t.Fatalf("data frame %s", m.Raw)
	}
	if _, body := call("GET", "/metrics"); !strings.Contains(body, "wsproxy_upstream_requests_total 9") {
		t.Fatalf("/metrics has no wsproxy_upstream_requests_total 9:\n%s", grepLines(body, "upstream"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
