package proxy_test

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
)

const (
	indexHTML = "<!doctype html><title>frontend build</title><div id=app></div>"
	appJS     = "console.log('frontend asset');"
	secret    = "TOP-SECRET-OUTSIDE-THE-ROOT"
)

// site writes a built frontend into a fresh directory, next to a file that
// must never be served.
func site(t testing.TB) string {
	t.Helper()
	parent := t.TempDir()
	root := filepath.Join(parent, "site")
	for name, body := range map[string]string{
		"index.html":       indexHTML,
		"assets/app.js":    appJS,
		"assets/style.css": "body{}",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(parent, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestStaticDir(t *testing.T) {
	f := startFront(t, func(c *config.Config) { c.Static.Dir = site(t) })
	tests := []struct {
		name, method, path string
		status             int
		body, ctype        string
	}{
		{"index at / instead of the demo page", "GET", "/", 200, indexHTML, "text/html"},
		{"index by name", "GET", "/index.html", 200, indexHTML, "text/html"},
		{"asset", "GET", "/assets/app.js", 200, appJS, "javascript"},
		{"head", "HEAD", "/assets/app.js", 200, "", "javascript"},
		{"client-side route", "GET", "/views/subscriptions", 200, indexHTML, "text/html"},
		{"nested client-side route", "GET", "/adapters/binance/", 200, indexHTML, "text/html"},
		{"missing asset", "GET", "/assets/missing.js", 404, "", ""},
		{"api without upstream", "GET", "/api/stats", 404, "", ""},
		{"health without upstream", "GET", "/health", 404, "", ""},
		{"post is not static", "POST", "/views/subscriptions", 404, "", ""},
		{"owned path", "GET", "/api/websocket/stats", 200, `"connection"`, "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, tc.method, tc.path, "")
			if r.status != tc.status || (tc.body != "" && !strings.Contains(r.body, tc.body)) ||
				!strings.Contains(r.header.Get("Content-Type"), tc.ctype) {
				t.Fatalf("%s %s = %d %q %.80s, want %d %q with %q", tc.method, tc.path, r.status,
					r.header.Get("Content-Type"), r.body, tc.status, tc.ctype, tc.body)
			}
		})
	}
}

// TestStaticNoTraversal sends raw request lines, which no client library
// would normalise first.
func TestStaticNoTraversal(t *testing.T) {
	f := startFront(t, func(c *config.Config) { c.Static.Dir = site(t) })
	addr := strings.TrimPrefix(f.base, "http://")
	for _, target := range []string{
		"/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt",
		"/assets/..%2f..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/assets/%2e%2e/%2e%2e/secret.txt",
		"/..\\secret.txt", "//../secret.txt", "/./../secret.txt",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(wait))
		if _, err := conn.Write([]byte("GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		var sb strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
		resp.Body.Close()
		conn.Close()
		if strings.Contains(sb.String(), secret) {
			t.Fatalf("GET %s served a file outside static.dir (status %d)", target, resp.StatusCode)
		}
	}
}

func TestStaticWithUpstream(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) {
		c.Static.Dir = site(t)
		c.Upstream.URL = up.srv.URL
	})
	if r := f.do(t, "GET", "/api/stats", ""); r.status != 200 || !strings.Contains(r.body, "messagesProcessed") {
		t.Fatalf("/api/stats = %d %s, want the upstream's", r.status, r.body)
	}
	if r := f.do(t, "GET", "/health", ""); !strings.Contains(r.body, "collector") {
		t.Fatalf("/health = %s, want the upstream's", r.body)
	}
	if r := f.do(t, "GET", "/views/adapters", ""); r.body != indexHTML || up.hitCount("/views/adapters") != 0 {
		t.Fatalf("client-side route = %.80s, want index.html, not forwarded", r.body)
	}
	if r := f.do(t, "GET", "/assets/app.js", ""); r.body != appJS || up.hitCount("/assets/app.js") != 0 {
		t.Fatalf("asset = %.80s", r.body)
	}
	// Neither a file nor a client-side route: the upstream's.
	if r := f.do(t, "GET", "/favicon.ico", ""); !strings.Contains(r.body, `"path":"/favicon.ico"`) {
		t.Fatalf("/favicon.ico = %d %s, want the upstream's answer", r.status, r.body)
	}
	if r := f.do(t, "POST", "/views/adapters", "{}"); !strings.Contains(r.body, `"method":"POST"`) {
		t.Fatalf("POST /views/adapters = %d %s, want the upstream's answer", r.status, r.body)
	}
}
