package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"wsproxy/admin"
	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/dataflow/sources"
	"wsproxy/internal/configtest"
	"wsproxy/internal/proxytest"
	"wsproxy/internal/wstest"
	"wsproxy/proxy"
	"wsproxy/upstream"
)

// collector is a real HTTP server standing in for the legacy collector's
// REST API: the endpoints the frontend calls, with state, plus a few for
// the proxy's own tests. It records what reached it.
type collector struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	subs    []map[string]any
	nextID  int
	pubsub  bool
	hits    map[string]int
	headers map[string]http.Header // last request headers by path

	ack      chan struct{} // /api/stats/stream: one per event received
	release  chan struct{} // /api/slow: closed to answer
	inFlight atomic.Int64  // /api/slow requests waiting
	gotPart  chan struct{} // /api/upload: first line arrived
}

func newCollector(t testing.TB) *collector {
	t.Helper()
	c := &collector{t: t, hits: map[string]int{}, headers: map[string]http.Header{},
		ack: make(chan struct{}), release: make(chan struct{}), gotPart: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	js := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, map[string]any{"messagesProcessed": 42, "uptime": 1234})
	})
	mux.HandleFunc("GET /api/adapters", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []map[string]any{{"name": "binance", "status": "connected"}})
	})
	mux.HandleFunc("GET /api/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		js(w, 200, map[string]any{"subscriptions": c.subs})
	})
	mux.HandleFunc("POST /api/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		var sub map[string]any
		if err := json.NewDecoder(r.Body).Decode(&sub); err != nil {
			js(w, 400, map[string]any{"error": err.Error()})
			return
		}
		c.mu.Lock()
		c.nextID++
		sub["id"] = strconv.Itoa(c.nextID)
		c.subs = append(c.subs, sub)
		c.mu.Unlock()
		js(w, 201, sub)
	})
	mux.HandleFunc("DELETE /api/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ ID string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			js(w, 400, map[string]any{"error": err.Error()})
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, s := range c.subs {
			if s["id"] == req.ID {
				c.subs = append(c.subs[:i], c.subs[i+1:]...)
				js(w, 200, map[string]any{"deleted": req.ID})
				return
			}
		}
		js(w, 404, map[string]any{"error": "no subscription " + req.ID})
	})
	mux.HandleFunc("GET /api/pubsub/status", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		js(w, 200, map[string]any{"enabled": c.pubsub})
	})
	mux.HandleFunc("POST /api/pubsub/toggle", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.pubsub = !c.pubsub
		js(w, 200, map[string]any{"enabled": c.pubsub})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, map[string]any{"status": "ok", "service": "collector"})
	})
	mux.HandleFunc("GET /api/stats/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		fl := w.(http.Flusher)
		for i := range 100 {
			fmt.Fprintf(w, "id: %d\nevent: stats\ndata: {\"seq\":%d}\n\n", i, i)
			fl.Flush()
			// The next event is written only once the client has this one:
			// a proxy that buffers never gets there.
			select {
			case <-c.ack:
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("GET /api/stats/forever", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /api/stats/ticker", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: {\"seq\":%d}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("GET /api/stats/twenty", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 20 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("/api/slow", func(w http.ResponseWriter, r *http.Request) {
		c.inFlight.Add(1)
		defer c.inFlight.Add(-1)
		select {
		case <-c.release:
			js(w, 200, map[string]any{"slow": true})
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("POST /api/upload", func(w http.ResponseWriter, r *http.Request) {
		br := bufio.NewReader(r.Body)
		first, err := br.ReadString('\n')
		if err != nil {
			js(w, 400, map[string]any{"error": err.Error()})
			return
		}
		c.gotPart <- struct{}{}
		rest, err := io.ReadAll(br)
		if err != nil {
			js(w, 400, map[string]any{"error": err.Error()})
			return
		}
		js(w, 200, map[string]any{"bytes": len(first) + len(rest)})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		js(w, 200, map[string]any{"path": r.URL.Path, "query": r.URL.RawQuery, "method": r.Method})
	})
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits[r.URL.Path]++
		c.headers[r.URL.Path] = r.Header.Clone()
		c.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		c.srv.CloseClientConnections()
		c.srv.Close()
	})
	return c
}

func (c *collector) hitCount(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits[path]
}

func (c *collector) lastHeaders(path string) http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.headers[path]
}

// front is a wsproxy server with the admin API and the demo page, as main
// wires them, fed by an in-process source.
type front struct {
	srv  *proxy.Server
	in   *dataflow.InProcess
	base string // http://host:port
	ws   string
	http *http.Client
	// stream has no overall timeout, for responses that last (event
	// streams, uploads): those tests bound each step instead.
	stream *http.Client
}

func startFront(t testing.TB, mut func(*config.Config)) *front {
	t.Helper()
	cfg := config.Config{}
	if mut != nil {
		mut(&cfg)
	}
	n := proxytest.Start(t, cfg, zerolog.Nop(), func(srv *proxy.Server) {
		admin.New(srv, srv.Config().Admin, zerolog.Nop()).Register(srv)
		proxy.RegisterDemoPage(srv)
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections) // before the shutdown (cleanups run last first)
	srv, in, addr := n.Srv, n.In, n.Addr
	return &front{srv: srv, in: in, base: "http://" + addr, ws: "ws://" + addr + "/ws",
		http: &http.Client{Transport: tr, Timeout: 2 * wait}, stream: &http.Client{Transport: tr}}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (f *front) do(t testing.TB, method, path, body string, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func decodeJSON(t testing.TB, r reply) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return v
}

// metric returns the value of one sample line of /metrics ("" if absent).
func (f *front) metric(t testing.TB, series string) string {
	t.Helper()
	r := f.do(t, "GET", "/metrics", "")
	for _, line := range strings.Split(r.body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

func TestUpstreamFrontendEndpoints(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) { c.Upstream.URL = up.srv.URL })

	steps := []struct {
		name, method, path, body string
		status                   int
		want                     string // substring of the JSON body
	}{
		{"stats", "GET", "/api/stats", "", 200, `"messagesProcessed":42`},
		{"adapters", "GET", "/api/adapters", "", 200, `"name":"binance"`},
		{"no subscriptions", "GET", "/api/subscriptions", "", 200, `"subscriptions":null`},
		{"add subscription", "POST", "/api/subscriptions", `{"exchange":"binance","symbol":"BTCUSDT"}`, 201, `"id":"1"`},
		{"listed", "GET", "/api/subscriptions", "", 200, `"symbol":"BTCUSDT"`},
		{"delete subscription", "DELETE", "/api/subscriptions", `{"id":"1"}`, 200, `"deleted":"1"`},
		{"delete unknown", "DELETE", "/api/subscriptions", `{"id":"9"}`, 404, `no subscription 9`},
		{"pubsub status", "GET", "/api/pubsub/status", "", 200, `"enabled":false`},
		{"pubsub toggle", "POST", "/api/pubsub/toggle", "", 200, `"enabled":true`},
		{"pubsub toggled", "GET", "/api/pubsub/status", "", 200, `"enabled":true`},
		{"collector health", "GET", "/health", "", 200, `"service":"collector"`},
		{"query kept", "GET", "/api/other?a=1&b=x%20y", "", 200, `"query":"a=1\u0026b=x%20y"`},
	}
	for _, s := range steps {
		r := f.do(t, s.method, s.path, s.body)
		if r.status != s.status || !strings.Contains(r.body, s.want) {
			t.Fatalf("%s: %s %s = %d %s, want %d with %s", s.name, s.method, s.path, r.status, r.body, s.status, s.want)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s: Content-Type %q", s.name, ct)
		}
	}
	if n := up.hitCount("/api/subscriptions"); n != 5 {
		t.Fatalf("upstream saw /api/subscriptions %d times, want 5", n)
	}
	if got := f.metric(t, "wsproxy_upstream_requests_total"); got != strconv.Itoa(len(steps)) {
		t.Fatalf("wsproxy_upstream_requests_total = %q, want %d", got, len(steps))
	}
}

func TestUpstreamHeaders(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) { c.Upstream.URL = up.srv.URL + "/base/" })

	r := f.do(t, "GET", "/x/y", "",
		"Connection", "X-Client-Hop", "X-Client-Hop", "1", "Proxy-Authorization", "Basic Zm9vOmJhcg==",
		"X-Forwarded-For", "203.0.113.7", "X-Kept", "yes", "Host", "front.example")
	if r.status != 200 || !strings.Contains(r.body, `"path":"/base/x/y"`) {
		t.Fatalf("GET /x/y = %d %s, want the upstream's answer for /base/x/y", r.status, r.body)
	}
	h := up.lastHeaders("/base/x/y")
	for _, name := range []string{"X-Client-Hop", "Proxy-Authorization"} {
		if v := h.Get(name); v != "" {
			t.Errorf("upstream received hop-by-hop %s: %q", name, v)
		}
	}
	if got := h.Get("X-Forwarded-For"); got != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the client appended", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := h.Get("X-Forwarded-Host"); got != "front.example" {
		t.Errorf("X-Forwarded-Host = %q", got)
	}
	if got := h.Get("X-Kept"); got != "yes" {
		t.Errorf("end-to-end header X-Kept = %q", got)
	}
	for _, name := range []string{"X-Hop", "Keep-Alive"} {
		if v := r.header.Get(name); v != "" {
			t.Errorf("client received hop-by-hop %s: %q", name, v)
		}
	}
	if r := f.do(t, "HEAD", "/x/y", ""); r.status != 200 || r.body != "" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD = %d %q %q, want the upstream's headers and no body", r.status, r.header.Get("Content-Type"), r.body)
	}
	if r := f.do(t, "GET", "/x/y", ""); r.status != 200 || !strings.Contains(r.body, `"path":"/base/x/y"`) {
		t.Errorf("GET after HEAD on the same connection = %d %s", r.status, r.body)
	}
}

func TestUpstreamEventStreamOneByOne(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) { c.Upstream.URL = up.srv.URL })

	resp, err := f.stream.Get(f.base + "/api/stats/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, ct)
	}
	events := make(chan string)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var ev []string
		for sc.Scan() {
			if sc.Text() != "" {
				ev = append(ev, sc.Text())
				continue
			}
			events <- strings.Join(ev, "|")
			ev = nil
		}
	}()
	for i := range 100 {
		select {
		case ev, ok := <-events:
			want := fmt.Sprintf(`id: %d|event: stats|data: {"seq":%d}`, i, i)
			if !ok || ev != want {
				t.Fatalf("event %d = %q (open %v), want %q", i, ev, ok, want)
			}
		case <-time.After(wait):
			t.Fatalf("event %d did not arrive while the upstream waits for it to be received", i)
		}
		select { // the upstream writes event i+1 only now
		case up.ack <- struct{}{}:
		case <-time.After(wait):
			t.Fatalf("upstream did not wait for ack %d", i)
		}
	}
	select {
	case ev, ok := <-events:
		if ok {
			t.Fatalf("extra event %q", ev)
		}
	case <-time.After(wait):
		t.Fatal("stream did not end after the upstream's last event")
	}
}

func TestUpstreamStreamsRequestBody(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) { c.Upstream.URL = up.srv.URL })

	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", f.base+"/api/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan reply, 1)
	go func() {
		resp, err := f.stream.Do(req)
		if err != nil {
			done <- reply{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- reply{status: resp.StatusCode, body: string(b)}
	}()
	if _, err := io.WriteString(pw, "first line\n"); err != nil {
		t.Fatal(err)
	}
	select { // the rest of the body is not written yet
	case <-up.gotPart:
	case r := <-done:
		t.Fatalf("request ended before the body did: %d %s", r.status, r.body)
	case <-time.After(wait):
		t.Fatal("the upstream did not receive the body's first part before its end: request bodies are not streamed")
	}
	if _, err := io.WriteString(pw, strings.Repeat("x", 5000)); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	r := <-done
	if r.status != 200 || !strings.Contains(r.body, `"bytes":5011`) {
		t.Fatalf("upload = %d %s", r.status, r.body)
	}
}

func TestUpstreamBodyLimit(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) {
		c.Upstream.URL = up.srv.URL
		c.Upstream.MaxBodyBytes = 1024
	})
	if r := f.do(t, "POST", "/api/limit", strings.Repeat("a", 1024)); r.status != 200 {
		t.Fatalf("body at the limit: %d %s", r.status, r.body)
	}
	r := f.do(t, "POST", "/api/limit", strings.Repeat("a", 1025))
	if r.status != 413 || decodeJSON(t, r)["error"] == nil {
		t.Fatalf("body over the limit: %d %s, want 413 JSON", r.status, r.body)
	}
	if n := up.hitCount("/api/limit"); n != 1 {
		t.Fatalf("upstream saw %d requests, want only the one within the limit", n)
	}

	// A chunked body declares no length: it is cut off at the limit.
	pr, pw := io.Pipe()
	go func() {
		for range 10 {
			if _, err := pw.Write([]byte(strings.Repeat("b", 300))); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", f.base+"/api/upload", pr)
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_ = pr.CloseWithError(io.ErrClosedPipe)
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"error"`) {
		t.Fatalf("chunked body over the limit: %d %s, want 413 JSON", resp.StatusCode, b)
	}
	if got := f.metric(t, `wsproxy_upstream_errors_total{reason="body_too_large"}`); got != "2" {
		t.Fatalf(`errors{reason="body_too_large"} = %q, want 2`, got)
	}
}

func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	f := startFront(t, func(c *config.Config) { c.Upstream.URL = "http://" + addr })

	for _, path := range []string{"/api/stats", "/health"} {
		r := f.do(t, "GET", path, "")
		if r.status != 502 || r.header.Get("Content-Type") != "application/json" ||
			decodeJSON(t, r)["error"] != "upstream unavailable" {
			t.Fatalf("GET %s with the upstream down = %d %q %s, want 502 JSON", path, r.status, r.header.Get("Content-Type"), r.body)
		}
	}
	if got := f.metric(t, `wsproxy_upstream_errors_total{reason="unavailable"}`); got != "2" {
		t.Fatalf(`errors{reason="unavailable"} = %q, want 2`, got)
	}
	// The WebSocket side does not care.
	c := wstest.Dial(t, f.ws)
	if m := c.Next(t, wait); m.Type != "welcome" {
		t.Fatalf("first frame %s", m.Raw)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) {
		c.Upstream.URL = up.srv.URL
		c.Upstream.ResponseTimeout = 200 * time.Millisecond
	})
	defer close(up.release)
	r := f.do(t, "GET", "/api/slow", "")
	if r.status != 504 || decodeJSON(t, r)["error"] != "upstream timeout" {
		t.Fatalf("slow upstream = %d %s, want 504 JSON", r.status, r.body)
	}
	if got := f.metric(t, `wsproxy_upstream_errors_total{reason="timeout"}`); got != "1" {
		t.Fatalf(`errors{reason="timeout"} = %q, want 1`, got)
	}
}

func TestUpstreamOwnedPathsStayLocal(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) { c.Upstream.URL = up.srv.URL })

	tests := []struct {
		path   string
		status int
		want   string
	}{
		{"/", 200, "<html"}, // the demo page
		{"/metrics", 200, "wsproxy_connections_active"},
		{"/livez", 200, ""},
		{"/api/websocket/stats", 200, `"connection"`},
		{"/api/websocket/status", 200, `"endpoint":"/ws"`},
		{"/api/websocket/unknown", 404, ""},
		{dataflow.IngestPath, 404, ""}, // no ingest source configured: still wsproxy's
	}
	for _, tc := range tests {
		r := f.do(t, "GET", tc.path, "")
		if r.status != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("GET %s = %d %.80s, want %d with %q", tc.path, r.status, r.body, tc.status, tc.want)
		}
		if n := up.hitCount(tc.path); n != 0 {
			t.Errorf("GET %s reached the upstream", tc.path)
		}
	}
	if r := f.do(t, "GET", "/health", ""); !strings.Contains(r.body, "collector") {
		t.Errorf("/health = %s, want the upstream's", r.body)
	}
	// An upgrade elsewhere than /ws is refused, not forwarded.
	if r := f.do(t, "GET", "/api/socket", "", "Connection", "Upgrade", "Upgrade", "websocket"); r.status != 501 || up.hitCount("/api/socket") != 0 {
		t.Errorf("upgrade on /api/socket = %d %s, want 501 and nothing forwarded", r.status, r.body)
	}
}

// TestUpstreamSlowDoesNotBlockWebSocket holds many proxied requests and an
// event stream open on a stalled upstream while WebSocket clients connect,
// subscribe and receive.
func TestUpstreamSlowDoesNotBlockWebSocket(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) { c.Upstream.URL = up.srv.URL })

	const held = 50
	var wg sync.WaitGroup
	results := make(chan int, held)
	for range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := f.http.Get(f.base + "/api/slow")
			if err != nil {
				results <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	stream, err := f.stream.Get(f.base + "/api/stats/forever")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	wstest.Eventually(t, wait, "upstream holds every request", func() bool { return up.inFlight.Load() == held })

	c := wstest.Dial(t, f.ws)
	if m := c.Next(t, wait); m.Type != "welcome" {
		t.Fatalf("first frame %s", m.Raw)
	}
	for i := range 20 {
		md := dataflow.MarketData{Exchange: "binance", Type: "trade", Symbol: "BTCUSDT", Timestamp: int64(i + 1), Data: []byte(`{"p":1}`)}
		if err := f.in.Output(context.Background(), md); err != nil {
			t.Fatal(err)
		}
		if m := c.NextOfType(t, "trade", wait); m.Str("payload", "symbol") != "BTCUSDT" {
			t.Fatalf("data frame %d: %s", i, m.Raw)
		}
	}
	if r := f.do(t, "GET", "/livez", ""); r.status != 200 {
		t.Fatalf("/livez = %d while the upstream is stalled", r.status)
	}
	close(up.release)
	wg.Wait()
	close(results)
	for s := range results {
		if s != 200 {
			t.Fatalf("held request ended with %d", s)
		}
	}
}

func TestUpstreamShutdownEndsStreams(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) { c.Upstream.URL = up.srv.URL })
	resp, err := f.stream.Get(f.base + "/api/stats/forever")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: first\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an open event stream: %v", err)
	}
	ended := make(chan struct{})
	go func() { _, _ = io.ReadAll(br); close(ended) }()
	select {
	case <-ended:
	case <-time.After(wait):
		t.Fatal("event stream still open after shutdown")
	}
	if st := f.srv.UpstreamStats(); st.Errors[upstream.Aborted] != 0 || st.Active != 0 {
		t.Fatalf("after shutdown: %+v (a stream ended by shutdown is not aborted)", st)
	}
}

// TestUpstreamKeepsIngestBounded: with an upstream, request bodies are
// streamed, and wsproxy's own body-reading route (ingest) still gets its
// body whole, chunked or not, and still refuses one past the server limit.
func TestUpstreamKeepsIngestBounded(t *testing.T) {
	up := newCollector(t)
	b, err := sources.Build(config.SourcesConfig{Ingest: configtest.Ingest(dataflow.IngestConfig{Enabled: true})})
	if err != nil {
		t.Fatal(err)
	}
	_, host := serve(t, config.Config{Upstream: config.UpstreamConfig{URL: up.srv.URL}}, b.Ingest, b.All...)
	wstest.Eventually(t, wait, "ingest running", func() bool { return b.Ingest.Stats().Connected })
	c := wstest.Dial(t, "ws://"+host+"/ws")
	c.NextOfType(t, "welcome", wait)
	url := "http://" + host + dataflow.IngestPath
	client := &http.Client{Timeout: 2 * wait}

	body := mdJSON("binance", "trade", "BTC/USDT", 1) + "\n" + mdJSON("binance", "trade", "BTC/USDT", 2) + "\n"
	pr, pw := io.Pipe()
	go func() { _, _ = io.WriteString(pw, body); _ = pw.Close() }()
	resp, err := client.Post(url, "application/x-ndjson", pr) // chunked: no length
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(got), `"accepted":2`) {
		t.Fatalf("chunked ingest = %d %s", resp.StatusCode, got)
	}
	for i := 1; i <= 2; i++ {
		if m := c.NextOfType(t, "trade", wait); m.Str("payload", "data", "seq") != strconv.Itoa(i) {
			t.Fatalf("trade %d: %s", i, m.Raw)
		}
	}
	if code, resp := httpDo(t, "POST", url, body); code != 200 || !strings.Contains(string(resp), `"accepted":2`) {
		t.Fatalf("ingest with a length = %d %s", code, resp)
	}
	// Over the server's 8 MiB: refused once fasthttp's first 8 KiB are in,
	// before the rest is read (only 16 KiB are ever sent), never forwarded.
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", dataflow.IngestPath, 9<<20)
	if _, err := conn.Write(make([]byte, 16<<10)); err != nil {
		t.Fatal(err)
	}
	big, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("9 MiB ingest declared, 16 KiB sent: no answer (%v)", err)
	}
	big.Body.Close()
	if big.StatusCode != 413 {
		t.Fatalf("9 MiB ingest = %d, want 413", big.StatusCode)
	}
	if n := up.hitCount(dataflow.IngestPath); n != 0 {
		t.Fatalf("ingest reached the upstream %d times", n)
	}
}

// TestUpstreamHTTP10 has an upstream that answers HTTP/1.0 with a body
// ended by closing the connection: the client still gets an HTTP/1.1
// answer with the whole body.
func TestUpstreamHTTP10(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(wait))
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
					return
				}
				_, _ = io.WriteString(conn, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"+strings.Repeat("old server ", 1000))
			}()
		}
	}()
	f := startFront(t, func(c *config.Config) { c.Upstream.URL = "http://" + ln.Addr().String() })
	for range 2 {
		resp, err := f.http.Get(f.base + "/api/stats")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.Proto != "HTTP/1.1" || resp.StatusCode != 200 || string(b) != strings.Repeat("old server ", 1000) {
			t.Fatalf("%s %d, %d bytes (%v)", resp.Proto, resp.StatusCode, len(b), err)
		}
	}
}

// TestUpstreamStreamTimeouts: response_timeout bounds the wait for the
// headers only, so a stream outlives it; idle_timeout cuts a stream that
// stays silent, counted as aborted.
func TestUpstreamStreamTimeouts(t *testing.T) {
	up := newCollector(t)
	f := startFront(t, func(c *config.Config) {
		c.Upstream.URL = up.srv.URL
		// The stream below lasts 2 s, four times response_timeout, with
		// 100 ms between events: fifteen times under idle_timeout, so a
		// busy machine's stall does not pass for silence.
		c.Upstream.ResponseTimeout = 500 * time.Millisecond
		c.Upstream.IdleTimeout = 1500 * time.Millisecond
	})
	resp, err := f.stream.Get(f.base + "/api/stats/twenty")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Count(string(b), "data: ") != 20 {
		t.Fatalf("stream longer than response_timeout: %d events (%v)", strings.Count(string(b), "data: "), err)
	}

	resp, err = f.stream.Get(f.base + "/api/stats/forever") // one event, then silence
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan string, 1)
	go func() { b, _ := io.ReadAll(resp.Body); ended <- string(b) }()
	select {
	case got := <-ended:
		if got != "data: first\n\n" {
			t.Fatalf("silent stream delivered %q", got)
		}
	case <-time.After(wait):
		t.Fatal("a silent stream outlived idle_timeout")
	}
	resp.Body.Close()
	if got := f.metric(t, `wsproxy_upstream_errors_total{reason="aborted"}`); got != "1" {
		t.Fatalf(`errors{reason="aborted"} = %q, want 1`, got)
	}
	if got := f.metric(t, "wsproxy_upstream_active"); got != "0" {
		t.Fatalf("wsproxy_upstream_active = %q after every stream ended", got)
	}
}

// TestUpstreamOwnedPathsWithoutTheirRoutes: when admin.listen moves the
// admin API, /metrics and the probes off the main listener (no route
// registered here), their paths still are not forwarded.
func TestUpstreamOwnedPathsWithoutTheirRoutes(t *testing.T) {
	up := newCollector(t)
	h := start(t, func(c *config.Config) { c.Upstream.URL = up.srv.URL })
	base := "http://" + h.srv.Addr().String()
	for _, path := range []string{"/metrics", "/livez", "/readyz", "/api/websocket/stats", "/api/websocket", dataflow.IngestPath} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 || up.hitCount(path) != 0 {
			t.Errorf("GET %s = %d, upstream hits %d; want 404 from wsproxy", path, resp.StatusCode, up.hitCount(path))
		}
	}
	if resp, err := http.Get(base + "/api/stats"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/api/stats: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
