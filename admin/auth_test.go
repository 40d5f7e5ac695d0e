package admin_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"wsproxy/admin"
	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
	"wsproxy/proxy"
)

// TestTokenGuardsMutatingCalls: with admin.token set, flush, drain and kick
// need the bearer token, and so do the per-client reads (the connection
// listing and one connection); aggregate read-only endpoints do not.
func TestTokenGuardsMutatingCalls(t *testing.T) {
	const token = "s3cret-token"
	e := start(t, func(c *config.Config) { c.Admin.Token = token })
	c := e.dial(t)
	var page admin.ConnectionPage
	call(t, http.MethodGet, e.url("/api/websocket/connections"), token, "", &page)
	id := page.Connections[0].ID
	calls := []struct{ method, path string }{
		{http.MethodPost, "/api/websocket/flush"},
		{http.MethodDelete, "/api/websocket/connections/" + id},
		{http.MethodPost, "/api/websocket/drain"},
		{http.MethodGet, "/api/websocket/connections"},
		{http.MethodGet, "/api/websocket/connections/" + id},
	}
	for _, cl := range calls {
		for _, bad := range []string{"", "wrong", token + "x", token[:5]} {
			t.Run(cl.method+" "+cl.path+" token="+bad, func(t *testing.T) {
				var v map[string]any
				if code := call(t, cl.method, e.url(cl.path), bad, "", &v); code != http.StatusUnauthorized || v["error"] == nil {
					t.Fatalf("%d %v", code, v)
				}
			})
		}
	}
	// A wrong scheme is refused too.
	req, _ := http.NewRequest(http.MethodPost, e.url("/api/websocket/flush"), nil)
	req.Header.Set("Authorization", "Basic "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("basic auth: %d %v", resp.StatusCode, resp.Header)
	}
	if e.srv.Draining() || e.srv.Pool().Len() != 1 {
		t.Fatal("a refused call had an effect")
	}
	// Aggregate read-only calls need no token.
	for _, p := range []string{"/api/websocket/stats", "/api/websocket/health", "/api/websocket/metrics", "/api/websocket/status", "/api/websocket/drain", "/livez", "/readyz"} {
		if code := getJSON(t, e.url(p), &map[string]any{}); code != 200 {
			t.Fatalf("GET %s without token: %d", p, code)
		}
	}
	// With the token every call goes through.
	var v map[string]any
	var ci admin.ConnInfo
	if code := call(t, http.MethodGet, e.url("/api/websocket/connections/"+id), token, "", &ci); code != 200 || ci.ID != id {
		t.Fatalf("connection with token: %d %+v", code, ci)
	}
	if code := call(t, http.MethodPost, e.url("/api/websocket/flush"), token, "", &v); code != 200 {
		t.Fatalf("flush with token: %d %v", code, v)
	}
	if code := call(t, http.MethodDelete, e.url("/api/websocket/connections/"+id), token, "", &v); code != 200 {
		t.Fatalf("kick with token: %d %v", code, v)
	}
	c.WaitClose(t, wait)
	if code := call(t, http.MethodPost, e.url("/api/websocket/drain"), token, "", &v); code != 200 || v["draining"] != true {
		t.Fatalf("drain with token: %d %v", code, v)
	}
}

// inmemory serves a proxy with the admin API on an in-memory listener, so
// that requests can come from any remote address.
func inmemory(t *testing.T, token string) (*proxy.Server, func(remote string) *fasthttp.HostClient) {
	t.Helper()
	srv, err := proxy.New(config.Config{Admin: config.AdminConfig{Token: token}}, zerolog.Nop(), dataflow.NewInProcess("test"))
	if err != nil {
		t.Fatal(err)
	}
	admin.New(srv, srv.Config().Admin, zerolog.Nop()).Register(srv)
	ln := fasthttputil.NewInmemoryListener()
	srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, func(remote string) *fasthttp.HostClient {
		addr := &net.TCPAddr{IP: net.ParseIP(remote), Port: 40000}
		return &fasthttp.HostClient{Addr: "wsproxy", Dial: func(string) (net.Conn, error) { return ln.DialWithLocalAddr(addr) }}
	}
}

func doInmemory(t *testing.T, hc *fasthttp.HostClient, method, path, token string) int {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://wsproxy" + path)
	req.Header.SetMethod(method)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if err := hc.DoTimeout(req, resp, wait); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode()
}

// TestNoTokenRefusesRemoteMutatingCalls: without admin.token, mutating
// calls are served to loopback callers only.
func TestNoTokenRefusesRemoteMutatingCalls(t *testing.T) {
	srv, client := inmemory(t, "")
	tests := []struct {
		name, remote, method, path string
		want                       int
	}{
		{"remote flush", "203.0.113.7", "POST", "/api/websocket/flush", 403},
		{"remote drain", "203.0.113.7", "POST", "/api/websocket/drain", 403},
		{"remote kick", "10.1.2.3", "DELETE", "/api/websocket/connections/x", 403},
		{"remote ipv6 flush", "2001:db8::1", "POST", "/api/websocket/flush", 403},
		{"remote reads stats", "203.0.113.7", "GET", "/api/websocket/stats", 200},
		{"remote reads metrics", "203.0.113.7", "GET", "/metrics", 200},
		{"remote lists connections", "203.0.113.7", "GET", "/api/websocket/connections", 403},
		{"remote reads a connection", "10.1.2.3", "GET", "/api/websocket/connections/x", 403},
		{"remote ipv6 lists connections", "2001:db8::1", "HEAD", "/api/websocket/connections", 403},
		{"loopback lists connections", "127.0.0.1", "GET", "/api/websocket/connections", 200},
		{"loopback ipv6 reads unknown connection", "::1", "GET", "/api/websocket/connections/x", 404},
		{"loopback flush", "127.0.0.1", "POST", "/api/websocket/flush", 200},
		{"loopback ipv6 kick of unknown", "::1", "DELETE", "/api/websocket/connections/x", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := doInmemory(t, client(tt.remote), tt.method, tt.path, ""); code != tt.want {
				t.Fatalf("%s %s from %s: %d, want %d", tt.method, tt.path, tt.remote, code, tt.want)
			}
		})
	}
	if srv.Draining() {
		t.Fatal("a refused drain took effect")
	}
}

// TestTokenAcceptsRemoteCallers: with a token, the address does not matter.
func TestTokenAcceptsRemoteCallers(t *testing.T) {
	srv, client := inmemory(t, "tok")
	hc := client("203.0.113.9")
	if code := doInmemory(t, hc, "POST", "/api/websocket/flush", ""); code != 401 {
		t.Fatalf("remote without token: %d", code)
	}
	if code := doInmemory(t, client("127.0.0.1"), "POST", "/api/websocket/flush", ""); code != 401 {
		t.Fatalf("loopback without token: %d (a token, once set, binds everyone)", code)
	}
	if code := doInmemory(t, hc, "POST", "/api/websocket/drain", "tok"); code != 200 || !srv.Draining() {
		t.Fatalf("remote with token: %d", code)
	}
}

// TestPerClientReadsFromRemote calls every read endpoint from non-loopback
// addresses (an in-memory listener reporting them as the peer) with a live
// client connected: the aggregate ones answer, the per-client ones (which
// reveal ids, addresses and counters) need the admin credential, and never
// leak the client's details in their refusal.
func TestPerClientReadsFromRemote(t *testing.T) {
	for _, token := range []string{"", "tok"} {
		t.Run("token="+token, func(t *testing.T) {
			srv, client := inmemory(t, token)
			hc := client("198.51.100.20")
			in := srv.Sources()[0].(*dataflow.InProcess)
			wstest.Eventually(t, wait, "source attached", func() bool { return in.Status().Connected })
			done := wsInmemory(t, client("198.51.100.30"))
			defer done()
			var id string
			wstest.Eventually(t, wait, "client listed", func() bool {
				srv.Pool().Each(func(c *pool.Conn) { id = c.ID() })
				return id != ""
			})
			for _, p := range []string{"/api/websocket/stats", "/api/websocket/health", "/api/websocket/metrics", "/api/websocket/status", "/metrics", "/livez", "/readyz"} {
				if code, _ := getInmemory(t, hc, p, ""); code != 200 {
					t.Fatalf("GET %s from remote: %d", p, code)
				}
			}
			refused := map[string]int{"": 403, "tok": 401}[token]
			for _, p := range []string{"/api/websocket/connections", "/api/websocket/connections/" + id} {
				code, body := getInmemory(t, hc, p, "")
				if code != refused || strings.Contains(body, id) || strings.Contains(body, "198.51.100.30") {
					t.Fatalf("GET %s from remote without credential: %d %s", p, code, body)
				}
				if token == "" {
					continue
				}
				if code, body := getInmemory(t, hc, p, token); code != 200 || !strings.Contains(body, "198.51.100.30") {
					t.Fatalf("GET %s from remote with the token: %d %s", p, code, body)
				}
			}
		})
	}
}

func getInmemory(t *testing.T, hc *fasthttp.HostClient, path, token string) (int, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://wsproxy" + path)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if err := hc.DoTimeout(req, resp, wait); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), string(resp.Body())
}

// wsInmemory opens a WebSocket over hc's in-memory dialer (so that the
// server sees hc's remote address) and reads its frames until done.
func wsInmemory(t *testing.T, hc *fasthttp.HostClient) func() {
	t.Helper()
	d := websocket.Dialer{NetDial: func(string, string) (net.Conn, error) { return hc.Dial("wsproxy") }, HandshakeTimeout: wait}
	c, _, err := d.Dial("ws://wsproxy/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return func() { _ = c.Close() }
}
