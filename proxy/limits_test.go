package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"wsproxy/config"
	"wsproxy/internal/admission"
	"wsproxy/internal/wstest"
	"wsproxy/proxy"
)

// upgradeStatus tries an upgrade and returns the HTTP status (101 on
// success, the connection then closed).
func upgradeStatus(t testing.TB, url string, h http.Header) int {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, h)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err == nil {
		_ = c.Close()
		return resp.StatusCode
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return resp.StatusCode
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestOriginAllowList(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		origin  string
		want    int
	}{
		{name: "empty list allows any (legacy)", origin: "https://evil.example", want: 101},
		{name: "listed origin", allowed: []string{"https://app.example.com"}, origin: "https://app.example.com", want: 101},
		{name: "origin compared case-insensitively", allowed: []string{"https://App.Example.com"}, origin: "https://app.example.COM", want: 101},
		{name: "other origin", allowed: []string{"https://app.example.com"}, origin: "https://evil.example", want: 403},
		{name: "scheme matters", allowed: []string{"https://app.example.com"}, origin: "http://app.example.com", want: 403},
		{name: "port matters", allowed: []string{"https://app.example.com"}, origin: "https://app.example.com:8443", want: 403},
		{name: "subdomain wildcard", allowed: []string{"https://*.example.com"}, origin: "https://a.b.example.com", want: 101},
		{name: "wildcard needs a subdomain", allowed: []string{"https://*.example.com"}, origin: "https://example.com", want: 403},
		{name: "wildcard is not a suffix match", allowed: []string{"https://*.example.com"}, origin: "https://evilexample.com", want: 403},
		{name: "explicit star", allowed: []string{"https://app.example.com", "*"}, origin: "https://evil.example", want: 101},
		{name: "no Origin header (not a browser)", allowed: []string{"https://app.example.com"}, want: 101},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, func(c *config.Config) { c.AllowedOrigins = tc.allowed })
			var head http.Header
			if tc.origin != "" {
				head = hdr("Origin", tc.origin)
			}
			if got := upgradeStatus(t, h.url, head); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if want := map[bool]uint64{true: 1, false: 0}[tc.want == 403]; h.srv.Rejections()[admission.RejectOrigin] != want {
				t.Fatalf("rejections %v, want origin=%d", h.srv.Rejections(), want)
			}
		})
	}
}

func TestTokenAuth(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Auth = config.AuthConfig{Mode: config.AuthToken, Tokens: []string{"s3cret", "other"}}
	})
	tests := []struct {
		name  string
		query string
		head  http.Header
		want  int
	}{
		{name: "no credential", want: 401},
		{name: "wrong token", query: "?token=nope", want: 401},
		{name: "prefix of a token", query: "?token=s3cre", want: 401},
		{name: "query token", query: "?token=s3cret", want: 101},
		{name: "second token", query: "?token=other", want: 101},
		{name: "bearer header", head: hdr("Authorization", "Bearer s3cret"), want: 101},
		{name: "wrong scheme", head: hdr("Authorization", "Basic s3cret"), want: 401},
	}
	var refused uint64
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := upgradeStatus(t, h.url+tc.query, tc.head); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if tc.want == 401 {
				refused++
			}
			if got := h.srv.Rejections()[admission.RejectAuth]; got != refused {
				t.Fatalf("auth rejections %d, want %d", got, refused)
			}
		})
	}
	// An authenticated client speaks the legacy protocol unchanged.
	c := wstest.Dial(t, h.url+"?token=s3cret")
	if m := c.Next(t, wait); m.Type != "welcome" {
		t.Fatalf("first frame %s", m.Raw)
	}
}

func TestJWTAuth(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "jwt.pub")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := []byte("hs256-test-secret-of-decent-length")
	future := jwt.NewNumericDate(time.Now().Add(time.Hour))
	past := jwt.NewNumericDate(time.Now().Add(-time.Minute))
	sign := func(m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	hs := start(t, func(c *config.Config) {
		c.Auth = config.AuthConfig{Mode: config.AuthJWT, JWT: config.JWTConfig{Algorithm: "HS256", Secret: string(secret), Issuer: "collector", Audience: "wsproxy"}}
	})
	rs := start(t, func(c *config.Config) {
		c.Auth = config.AuthConfig{Mode: config.AuthJWT, JWT: config.JWTConfig{Algorithm: "RS256", PublicKeyFile: pubFile}}
	})
	good := jwt.MapClaims{"sub": "u1", "exp": future, "iss": "collector", "aud": "wsproxy"}
	with := func(k string, v any) jwt.MapClaims {
		m := jwt.MapClaims{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name  string
		srv   string
		token string
		want  int
	}{
		{name: "HS256 valid", srv: hs.url, token: sign(jwt.SigningMethodHS256, secret, good), want: 101},
		{name: "HS256 expired", srv: hs.url, token: sign(jwt.SigningMethodHS256, secret, with("exp", past)), want: 401},
		{name: "HS256 without exp", srv: hs.url, token: sign(jwt.SigningMethodHS256, secret, with("exp", nil)), want: 401},
		{name: "HS256 wrong secret", srv: hs.url, token: sign(jwt.SigningMethodHS256, []byte("another-secret-entirely-here!!"), good), want: 401},
		{name: "HS256 wrong issuer", srv: hs.url, token: sign(jwt.SigningMethodHS256, secret, with("iss", "someone")), want: 401},
		{name: "HS256 wrong audience", srv: hs.url, token: sign(jwt.SigningMethodHS256, secret, with("aud", "other")), want: 401},
		{name: "HS384 refused (algorithm pinned)", srv: hs.url, token: sign(jwt.SigningMethodHS384, secret, good), want: 401},
		{name: "alg none refused", srv: hs.url, token: sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good), want: 401},
		{name: "garbage", srv: hs.url, token: "not.a.jwt", want: 401},
		{name: "RS256 valid", srv: rs.url, token: sign(jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"exp": future}), want: 101},
		{name: "RS256 expired", srv: rs.url, token: sign(jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"exp": past}), want: 401},
		{name: "RS256 other key", srv: rs.url, token: sign(jwt.SigningMethodRS256, otherRSA, jwt.MapClaims{"exp": future}), want: 401},
		{name: "HS256 token signed with the RS256 public key refused", srv: rs.url, token: sign(jwt.SigningMethodHS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), jwt.MapClaims{"exp": future}), want: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := upgradeStatus(t, tc.srv+"?token="+tc.token, nil); got != tc.want {
				t.Fatalf("query: status %d, want %d", got, tc.want)
			}
			if got := upgradeStatus(t, tc.srv, hdr("Authorization", "Bearer "+tc.token)); got != tc.want {
				t.Fatalf("header: status %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPerIPConnectionLimit(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Limits.MaxConnectionsPerIP = 2 })
	a, b := h.dial(t), h.dial(t)
	if got := upgradeStatus(t, h.url, nil); got != 429 {
		t.Fatalf("third connection from one address: status %d, want 429", got)
	}
	if got := h.srv.Rejections()[admission.RejectPerIP]; got != 1 {
		t.Fatalf("per-IP rejections %d", got)
	}
	_ = a.Conn.Close()
	wstest.Eventually(t, wait, "slot released", func() bool { return h.srv.Pool().Len() == 1 })
	c := h.dial(t) // a slot is free again
	_, _ = b, c
}

func TestConnectionRateLimits(t *testing.T) {
	tests := []struct {
		name   string
		mut    func(*config.Config)
		reason string
	}{
		{name: "per address", mut: func(c *config.Config) { c.Limits.ConnectRatePerIP, c.Limits.ConnectBurstPerIP = 0.001, 3 }, reason: admission.RejectRateIP},
		{name: "global", mut: func(c *config.Config) { c.Limits.ConnectRate, c.Limits.ConnectBurst = 0.001, 3 }, reason: admission.RejectRateTotal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tc.mut)
			for i := 0; i < 3; i++ {
				if got := upgradeStatus(t, h.url, nil); got != 101 {
					t.Fatalf("connection %d within the burst: status %d", i, got)
				}
			}
			if got := upgradeStatus(t, h.url, nil); got != 429 {
				t.Fatalf("connection over the burst: status %d, want 429", got)
			}
			if got := h.srv.Rejections()[tc.reason]; got != 1 {
				t.Fatalf("rejections %v, want %s=1", h.srv.Rejections(), tc.reason)
			}
		})
	}
}

// TestMessageRateLimit: over the rate a client gets one RATE_LIMIT_EXCEEDED
// error; if it keeps going it is closed with 1008.
func TestMessageRateLimit(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Limits.MessageRate, c.Limits.MessageBurst, c.Limits.RateLimitGrace = 0.001, 5, 3
	})
	c := h.dial(t)
	for i := 0; i < 20; i++ {
		if err := c.Conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
			break // closed by the server, as expected, before all were sent
		}
	}
	cl, msgs := c.WaitClose(t, wait)
	var pongs, errs int
	for _, m := range msgs {
		switch {
		case m.Type == "pong":
			pongs++
		case m.Type == "error" && m.Str("payload", "code") == "RATE_LIMIT_EXCEEDED":
			errs++
		default:
			t.Fatalf("unexpected %s", m.Raw)
		}
	}
	if pongs != 5 || errs != 1 {
		t.Fatalf("%d pongs and %d rate errors, want 5 and 1", pongs, errs)
	}
	if cl.Code != websocket.ClosePolicyViolation || cl.Reason != "Rate limit exceeded" {
		t.Fatalf("close %+v, want 1008", cl)
	}
	if h.srv.RateLimited() < 4 {
		t.Fatalf("rate-limited count %d", h.srv.RateLimited())
	}
}

// TestMessageRateLimitRecovers: a client that slows down after its error
// is served again and stays connected.
func TestMessageRateLimitRecovers(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Limits.MessageRate, c.Limits.MessageBurst, c.Limits.RateLimitGrace = 20, 2, 1000
	})
	c := h.dial(t)
	for i := 0; i < 4; i++ {
		c.Send(t, `{"type":"ping"}`)
	}
	got := map[string]int{}
	for i := 0; i < 3; i++ { // 2 pongs and 1 error, in some order
		got[c.Next(t, wait).Type]++
	}
	if got["pong"] != 2 || got["error"] != 1 {
		t.Fatalf("replies %v", got)
	}
	// Pinging at 10/s (under the rate) is answered again.
	deadline := time.Now().Add(wait)
	for {
		c.Send(t, `{"type":"ping"}`)
		if m, ok := c.TryNext(100 * time.Millisecond); ok && m.Type == "pong" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never served again after slowing down")
		}
	}
}

// TestWebSocketPingFloodIsRateLimited: protocol-level pings count too.
func TestWebSocketPingFloodIsRateLimited(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Limits.MessageRate, c.Limits.MessageBurst, c.Limits.RateLimitGrace = 0.001, 3, 5
	})
	c := h.dial(t)
	for i := 0; i < 50; i++ {
		if err := c.Conn.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second)); err != nil {
			break // the server may already have closed
		}
	}
	cl, _ := c.WaitClose(t, wait)
	if cl.Code != websocket.ClosePolicyViolation {
		t.Fatalf("close %+v, want 1008", cl)
	}
}

func TestIndexKeysLimit(t *testing.T) {
	sub := func(ex, types []string, nsym int) string {
		syms := make([]string, nsym)
		for i := range syms {
			syms[i] = fmt.Sprintf("S%d/USDT", i)
		}
		q := func(v []string) string { return `["` + strings.Join(v, `","`) + `"]` }
		return `{"type":"subscribe","payload":{"exchange":` + q(ex) + `,"dataTypes":` + q(types) + `,"symbols":` + q(syms) + `}}`
	}
	h := start(t, func(c *config.Config) { c.Limits.MaxIndexKeys = 100 })
	c := h.dial(t)
	expect := func(typ, code string) wstest.Msg {
		t.Helper()
		m := c.Next(t, wait)
		if m.Type != typ || (code != "" && m.Str("payload", "code") != code) {
			t.Fatalf("got %s, want %s %s", m.Raw, typ, code)
		}
		return m
	}
	c.Send(t, sub([]string{"a", "b", "c"}, []string{"trade", "ticker"}, 20)) // 120 keys
	expect("error", "LIMIT_EXCEEDED")
	c.Send(t, sub([]string{"a"}, []string{"trade", "ticker"}, 25)) // 50
	first := expect("subscribed", "").Str("payload", "filterId")
	c.Send(t, sub([]string{"b"}, []string{"trade", "ticker"}, 25)) // 100
	expect("subscribed", "")
	c.Send(t, sub([]string{"c"}, []string{"trade"}, 1)) // 101
	expect("error", "LIMIT_EXCEEDED")
	c.Send(t, `{"type":"unsubscribe","payload":{"filterId":"`+first+`"}}`)
	expect("unsubscribed", "")
	c.Send(t, sub([]string{"c"}, []string{"trade"}, 1))
	expect("subscribed", "")
	c.Send(t, `{"type":"unsubscribe","payload":{}}`)
	expect("unsubscribed", "")
	c.Send(t, sub([]string{"a"}, []string{"trade", "ticker"}, 50)) // 100 after removing all
	expect("subscribed", "")

	// The defaults let one filter expand to 32 × 8 × 100 keys: the
	// connection cap refuses it.
	d := start(t, nil)
	dc := d.dial(t)
	ex := make([]string, 32)
	for i := range ex {
		ex[i] = fmt.Sprintf("ex%d", i)
	}
	dc.Send(t, sub(ex, []string{"trade", "ticker", "depth", "orderbook", "kline"}, 100))
	if m := dc.Next(t, wait); m.Type != "error" || m.Str("payload", "code") != "LIMIT_EXCEEDED" {
		t.Fatalf("default cap: got %s", m.Raw)
	}
}

// TestHandshakeTimeoutCutsSlowloris: a client that trickles its upgrade
// request is disconnected after limits.handshake_timeout.
func TestHandshakeTimeoutCutsSlowloris(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Limits.HandshakeTimeout = 300 * time.Millisecond })
	addr := strings.TrimSuffix(strings.TrimPrefix(h.url, "ws://"), "/ws")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"); err != nil {
		t.Fatal(err)
	}
	// Keep trickling a header byte now and then, as slowloris does; the
	// server must hang up long before the test's own deadline.
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, nc)
		done <- err
	}()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			_, _ = io.WriteString(nc, "X")
		case <-deadline:
			t.Fatal("server kept a trickling handshake open for 5s (handshake_timeout 300ms)")
		}
	}
}

// TestTLSListener serves wss:// with a certificate made for the test.
func TestTLSListener(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	h := start(t, func(c *config.Config) { c.TLS = config.TLSConfig{CertFile: certFile, KeyFile: keyFile} })
	wss := "wss://" + strings.TrimPrefix(h.url, "ws://")
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	c, _, err := d.Dial(wss, nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, msg, err := c.ReadMessage()
	if err != nil || !strings.Contains(string(msg), `"welcome"`) {
		t.Fatalf("first frame %q, %v", msg, err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err = c.ReadMessage(); err != nil || !strings.Contains(string(msg), `"pong"`) {
		t.Fatalf("reply %q, %v", msg, err)
	}
	// Plain HTTP on the TLS port gets no upgrade.
	if _, err := wstest.TryDial(h.url, nil); err == nil {
		t.Fatal("plain ws:// upgraded on the TLS listener")
	}
}

func selfSigned(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wsproxy test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestHardeningConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{name: "token mode without tokens", yaml: "auth: {mode: token}\n", want: "auth.tokens"},
		{name: "unknown auth mode", yaml: "auth: {mode: basic}\n", want: "auth.mode"},
		{name: "jwt HS256 without secret", yaml: "auth: {mode: jwt}\n", want: "auth.jwt.secret"},
		{name: "jwt RS256 without key", yaml: "auth: {mode: jwt, jwt: {algorithm: RS256}}\n", want: "public_key_file"},
		{name: "jwt unknown algorithm", yaml: "auth: {mode: jwt, jwt: {algorithm: none, secret: x}}\n", want: "auth.jwt.algorithm"},
		{name: "tls cert without key", yaml: "tls: {cert_file: c.pem}\n", want: "tls"},
		{name: "origin without scheme", yaml: "allowed_origins: [example.com]\n", want: "allowed_origins"},
		{name: "negative per-IP limit", yaml: "limits: {max_connections_per_ip: -1}\n", want: "max_connections_per_ip"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
	t.Run("missing certificate file", func(t *testing.T) {
		_, err := proxy.New(config.Config{TLS: config.TLSConfig{CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"}}, zerolog.Nop())
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}
