// Package admission decides, before the WebSocket upgrade, whether a
// request may become a connection: browser origin, credential (static
// token or JWT), connections per address, connection rates per address and
// in total; and it loads the listener's TLS certificate.
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
	"wsproxy/internal/tokenbucket"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
)

// Admission errors: why an upgrade request was refused before the upgrade.
// Each maps to an HTTP status and a counter (Guard.Rejections).
var (
	ErrOriginForbidden = errors.New("proxy: origin not allowed")
	ErrUnauthorized    = errors.New("proxy: missing or invalid credential")
	ErrTooManyPerIP    = errors.New("proxy: too many connections from this address")
	ErrRateLimited     = errors.New("proxy: connection rate exceeded")
)

// Rejection reasons, the keys of Guard.Rejections.
const (
	RejectOrigin    = "origin"
	RejectAuth      = "auth"
	RejectPerIP     = "per_ip_connections"
	RejectRateIP    = "connect_rate_per_ip"
	RejectRateTotal = "connect_rate"
)

// Reasons lists every rejection reason.
var Reasons = []string{RejectOrigin, RejectAuth, RejectPerIP, RejectRateIP, RejectRateTotal}

// Guard decides, before the upgrade, whether a request may become a
// WebSocket: origin, connection rates, per-address count, credential.
// Safe for concurrent use.
type Guard struct {
	origins  []string // lower-cased; nil allows any
	perIP    int
	ipRate   float64
	ipBurst  float64
	global   *tokenbucket.Bucket // nil: unlimited
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
	bucket tokenbucket.Bucket
}

// New returns the guard of cfg (defaults applied); it fails when the TLS
// certificate or the RS256 key cannot be loaded.
func New(cfg config.Config) (*Guard, error) {
	l := cfg.Limits
	g := &Guard{
		perIP:    l.MaxConnectionsPerIP,
		ipRate:   l.ConnectRatePerIP,
		ipBurst:  float64(l.ConnectBurstPerIP),
		param:    cfg.Auth.QueryParam,
		rejected: make(map[string]*atomic.Uint64, len(Reasons)),
		ips:      make(map[string]*ipState),
	}
	for _, r := range Reasons {
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
		b := tokenbucket.New(l.ConnectRate, l.ConnectBurst, time.Now())
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

// Admit checks ctx and, when it may proceed, reserves a per-address slot:
// the caller must call release once the connection ends. When it may not,
// Admit has written the HTTP error response and counted the rejection.
func (g *Guard) Admit(ctx *fasthttp.RequestCtx) (release func(), ok bool) {
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
		st = &ipState{bucket: tokenbucket.New(g.ipRate, int(g.ipBurst), now)}
		g.ips[ip] = st
	}
	var reason string
	var err error
	switch {
	case g.perIP > 0 && st.conns >= g.perIP:
		reason, err = RejectPerIP, ErrTooManyPerIP
	case g.ipRate > 0 && !st.bucket.Take(now):
		reason, err = RejectRateIP, ErrRateLimited
	case g.global != nil && !g.global.Take(now):
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
func (g *Guard) sweepLocked(now time.Time) {
	if now.Sub(g.lastSweep) < 10*time.Second {
		return
	}
	g.lastSweep = now
	for ip, st := range g.ips {
		st.bucket.Refill(now)
		if st.conns == 0 && st.bucket.Tokens >= st.bucket.Burst {
			delete(g.ips, ip)
		}
	}
}

func (g *Guard) reject(ctx *fasthttp.RequestCtx, reason string, status int, err error) {
	g.rejected[reason].Add(1)
	ctx.Response.Header.Set("Connection", "close")
	ctx.SetConnectionClose()
	ctx.Error(err.Error(), status)
}

func (g *Guard) checkOrigin(ctx *fasthttp.RequestCtx) error {
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
func (g *Guard) credential(ctx *fasthttp.RequestCtx) string {
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
func (g *Guard) Rejections() map[string]uint64 {
	out := make(map[string]uint64, len(g.rejected))
	for k, v := range g.rejected {
		out[k] = v.Load()
	}
	return out
}

// TLS returns the listener's TLS configuration, nil without tls.cert_file.
func (g *Guard) TLS() *tls.Config { return g.tls }

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
