package admission

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"wsproxy/config"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
)

// Admission errors: why an upgrade request was refused before the upgrade.
// Each maps to an HTTP status and a counter (Server.Rejections).
var (
	ErrOriginForbidden = errors.New("proxy: origin not allowed")
	ErrUnauthorized    = errors.New("proxy: missing or invalid credential")
	ErrTooManyPerIP    = errors.New("proxy: too many connections from this address")
	ErrRateLimited     = errors.New("proxy: connection rate exceeded")
)

// Rejection reasons, the keys of Server.Rejections.
const (
	RejectOrigin    = "origin"
	RejectAuth      = "auth"
	RejectPerIP     = "per_ip_connections"
	RejectRateIP    = "connect_rate_per_ip"
	RejectRateTotal = "connect_rate"
)

var rejectReasons = []string{RejectOrigin, RejectAuth, RejectPerIP, RejectRateIP, RejectRateTotal}

// guard decides, before the upgrade, whether a request may become a
// WebSocket: origin, connection rates, per-address count, credential.
// Safe for concurrent use.
type guard struct {
	origins  []string // lower-cased; nil allows any
	perIP    int
	ipRate   float64
	ipBurst  float64
	global   *bucket // nil: unlimited
	auth     func(credential string) error
	param    string
	tls      *tls.Config
	rejected map[string]*atomic.Uint64

	mu        sync.Mutex
	ips       map[string]*ipState
	lastSweep time.Time
}

type ipState struct {
	conns  int
	bucket bucket
}

// bucket is a token bucket; the caller serialises access.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate float64, burst int, now time.Time) bucket {
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// take removes one token if there is one.
func (b *bucket) take(now time.Time) bool {
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// takeN removes n tokens if there are that many.
func (b *bucket) takeN(now time.Time, n float64) bool {
	b.refill(now)
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(b.burst, b.tokens+d*b.rate)
		b.last = now
	}
}

func newGuard(cfg config.Config) (*guard, error) {
	l := cfg.Limits
	g := &guard{
		perIP:    l.MaxConnectionsPerIP,
		ipRate:   l.ConnectRatePerIP,
		ipBurst:  float64(l.ConnectBurstPerIP),
		param:    cfg.Auth.QueryParam,
		rejected: make(map[string]*atomic.Uint64, len(rejectReasons)),
		ips:      make(map[string]*ipState),
	}
	for _, r := range rejectReasons {
		g.rejected[r] = new(atomic.Uint64)
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			g.origins = nil
			break
		}
		g.origins = append(g.origins, strings.ToLower(strings.TrimSuffix(o, "/")))
	}
	if l.ConnectRate > 0 {
		b := newBucket(l.ConnectRate, l.ConnectBurst, time.Now())
		g.global = &b
	}
	var err error
	if g.auth, err = newAuthenticator(cfg.Auth); err != nil {
		return nil, err
	}
	if cfg.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("proxy: tls: %w", err)
		}
		g.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return g, nil
}

// admit checks ctx and, when it may proceed, reserves a per-address slot:
// the caller must call release once the connection ends. When it may not,
// admit has written the HTTP error response and counted the rejection.
func (g *guard) admit(ctx *fasthttp.RequestCtx) (release func(), ok bool) {
	if err := g.checkOrigin(ctx); err != nil {
		g.reject(ctx, RejectOrigin, fasthttp.StatusForbidden, err)
		return nil, false
	}
	ip := ctx.RemoteIP().String()
	now := time.Now()
	g.mu.Lock()
	st := g.ips[ip]
	if st == nil && (g.perIP > 0 || g.ipRate > 0) {
		g.sweepLocked(now)
		st = &ipState{bucket: newBucket(g.ipRate, int(g.ipBurst), now)}
		g.ips[ip] = st
	}
	var reason string
	var err error
	switch {
	case g.perIP > 0 && st.conns >= g.perIP:
		reason, err = RejectPerIP, ErrTooManyPerIP
	case g.ipRate > 0 && !st.bucket.take(now):
		reason, err = RejectRateIP, ErrRateLimited
	case g.global != nil && !g.global.take(now):
		reason, err = RejectRateTotal, ErrRateLimited
	}
	if st != nil && err == nil {
		st.conns++
	}
	g.mu.Unlock()
	if err != nil {
		ctx.Response.Header.Set("Retry-After", "1")
		g.reject(ctx, reason, fasthttp.StatusTooManyRequests, err)
		return nil, false
	}
	release = func() {}
	if st != nil {
		var once sync.Once
		release = func() {
			once.Do(func() {
				g.mu.Lock()
				st.conns--
				g.mu.Unlock()
			})
		}
	}
	if g.auth != nil {
		if err := g.auth(g.credential(ctx)); err != nil {
			release()
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="wsproxy"`)
			g.reject(ctx, RejectAuth, fasthttp.StatusUnauthorized, ErrUnauthorized)
			return nil, false
		}
	}
	return release, true
}

// sweepLocked forgets addresses with no connection whose bucket has
// refilled, at most every 10s, so that the map does not grow with every
// address ever seen.
func (g *guard) sweepLocked(now time.Time) {
	if now.Sub(g.lastSweep) < 10*time.Second {
		return
	}
	g.lastSweep = now
	for ip, st := range g.ips {
		st.bucket.refill(now)
		if st.conns == 0 && st.bucket.tokens >= st.bucket.burst {
			delete(g.ips, ip)
		}
	}
}

func (g *guard) reject(ctx *fasthttp.RequestCtx, reason string, status int, err error) {
	g.rejected[reason].Add(1)
	ctx.Response.Header.Set("Connection", "close")
	ctx.SetConnectionClose()
	ctx.Error(err.Error(), status)
}

func (g *guard) checkOrigin(ctx *fasthttp.RequestCtx) error {
	if g.origins == nil {
		return nil
	}
	o := ctx.Request.Header.Peek("Origin")
	if len(o) == 0 {
		return nil // not a browser: Origin protects browsers only
	}
	origin := strings.ToLower(string(o))
	for _, allowed := range g.origins {
		if originMatch(allowed, origin) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrOriginForbidden, strconv.Quote(origin))
}

// originMatch compares an allowed origin, possibly with a "*." subdomain
// wildcard ("https://*.example.com"), with a request origin.
func originMatch(allowed, origin string) bool {
	if allowed == origin {
		return true
	}
	scheme, host, ok := strings.Cut(allowed, "://*.")
	if !ok {
		return false
	}
	rest, ok := strings.CutPrefix(origin, scheme+"://")
	return ok && strings.HasSuffix(rest, "."+host) && len(rest) > len(host)+1
}

// credential returns the bearer token of the Authorization header or, for
// browsers, of the query parameter.
func (g *guard) credential(ctx *fasthttp.RequestCtx) string {
	if h := ctx.Request.Header.Peek("Authorization"); len(h) > 0 {
		if tok, ok := strings.CutPrefix(string(h), "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
	}
	return string(ctx.QueryArgs().Peek(g.param))
}

// Rejections returns how many upgrade requests were refused before the
// upgrade, by reason (Reject* constants). Connections refused after it for
// capacity (close 1013) are not included.
func (s *Server) Rejections() map[string]uint64 {
	out := make(map[string]uint64, len(s.guard.rejected))
	for k, v := range s.guard.rejected {
		out[k] = v.Load()
	}
	return out
}

// newAuthenticator returns the credential check of cfg's mode, nil for none.
func newAuthenticator(cfg config.AuthConfig) (func(string) error, error) {
	switch cfg.Mode {
	case config.AuthToken:
		tokens := make([][]byte, len(cfg.Tokens))
		for i, t := range cfg.Tokens {
			tokens[i] = []byte(t)
		}
		return func(cred string) error {
			ok := 0
			for _, t := range tokens {
				ok |= subtle.ConstantTimeCompare(t, []byte(cred))
			}
			if ok == 0 {
				return ErrUnauthorized
			}
			return nil
		}, nil
	case config.AuthJWT:
		return newJWTAuth(cfg.JWT)
	}
	return nil, nil
}

func newJWTAuth(cfg config.JWTConfig) (func(string) error, error) {
	var key any
	switch cfg.Algorithm {
	case "RS256":
		pem, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("proxy: auth.jwt.public_key_file: %w", err)
		}
		if key, err = jwt.ParseRSAPublicKeyFromPEM(pem); err != nil {
			return nil, fmt.Errorf("proxy: auth.jwt.public_key_file: %w", err)
		}
	default:
		key = []byte(cfg.Secret)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{cfg.Algorithm}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	parser := jwt.NewParser(opts...)
	keyFn := func(*jwt.Token) (any, error) { return key, nil }
	return func(cred string) error {
		if cred == "" {
			return ErrUnauthorized
		}
		if _, err := parser.Parse(cred, keyFn); err != nil {
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		return nil
	}, nil
}
