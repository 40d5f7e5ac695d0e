// Package upstream serves the same origin's other half: the reverse proxy
// to the collector's HTTP API (upstream.url) and a built frontend from a
// directory (static.dir). What wsproxy keeps for itself is decided by the
// proxy's router (proxy/passthrough.go).
package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wsproxy/config"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Error reasons, the label of wsproxy_upstream_errors_total.
const (
	Unavailable  = "unavailable"    // 502: connecting or talking to the upstream failed
	Timeout      = "timeout"        // 504: no response headers within response_timeout
	Busy         = "busy"           // 503: every upstream connection in use
	BodyTooLarge = "body_too_large" // 413: request body over max_body_bytes
	Aborted      = "aborted"        // a response body cut off after its headers (upstream failure or idle_timeout)
)

// Reasons lists every reason, in a fixed order.
var Reasons = []string{Unavailable, Timeout, Busy, BodyTooLarge, Aborted}

// Stats counts the reverse proxy's work since start.
type Stats struct {
	// Enabled is false when no upstream.url is configured.
	Enabled bool `json:"enabled"`
	// Requests answered by the upstream (any status).
	Requests uint64 `json:"requests"`
	// Active requests in flight, open event streams included.
	Active int64 `json:"active"`
	// Errors by reason (Reasons).
	Errors map[string]uint64 `json:"errors"`
}

var http11 = []byte("HTTP/1.1")

// errUpstreamBodyTooLarge ends a streamed request body past max_body_bytes.
var errUpstreamBodyTooLarge = errors.New("proxy: request body exceeds upstream.max_body_bytes")

// Proxy reverse-proxies requests to one HTTP server. Request bodies are
// streamed to it as they arrive (up to maxBody) and response bodies back to
// the client chunk by chunk, each chunk flushed, so that server-sent events
// arrive one by one. Everything runs on the client connection's own
// goroutine: nothing here touches the WebSocket side. Safe for concurrent
// use.
type Proxy struct {
	client   *fasthttp.HostClient
	scheme   string
	host     string
	basePath string
	maxBody  int
	idle     time.Duration
	// writeTimeout is the deadline of each write of a streamed response to
	// the client (the server's own WriteTimeout would cut long streams).
	writeTimeout time.Duration
	log          zerolog.Logger
	lastWarn     atomic.Int64

	requests atomic.Uint64
	active   atomic.Int64
	errs     [5]atomic.Uint64 // by index in Reasons

	mu       sync.Mutex
	streams  map[*upstreamBody]struct{}
	closed   bool
	stopping atomic.Bool // streams ended by shutdown are not "aborted"
}

// New returns the reverse proxy of cfg (defaults applied); writeTimeout is
// the deadline of each write of a streamed response to the client.
func New(cfg config.UpstreamConfig, writeTimeout time.Duration, log zerolog.Logger) (*Proxy, error) {
	u, err := config.ParseUpstreamURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	tls := u.Scheme == "https"
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[tls])
	}
	up := &Proxy{
		scheme:       u.Scheme,
		host:         u.Host,
		basePath:     strings.TrimSuffix(u.EscapedPath(), "/"),
		maxBody:      cfg.MaxBodyBytes,
		idle:         cfg.IdleTimeout,
		writeTimeout: writeTimeout,
		log:          log.With().Str("component", "upstream").Str("upstream", u.Scheme+"://"+u.Host).Logger(),
		streams:      make(map[*upstreamBody]struct{}),
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	up.client = &fasthttp.HostClient{
		Addr:                addr,
		IsTLS:               tls,
		Name:                "wsproxy",
		MaxConns:            cfg.MaxConnections,
		MaxConnWaitTimeout:  cfg.ResponseTimeout,
		ReadTimeout:         cfg.ResponseTimeout,
		WriteTimeout:        cfg.ResponseTimeout,
		MaxIdleConnDuration: 30 * time.Second,
		StreamResponseBody:  true,
		// A request is sent once, unless a pooled connection turned out to
		// be closed before any byte of a bodiless GET or HEAD was answered.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr: func(req *fasthttp.Request, _ int, err error) (bool, bool) {
			retry := errors.Is(err, fasthttp.ErrConnectionClosed) && !req.IsBodyStream() &&
				(req.Header.IsGet() || req.Header.IsHead())
			return false, retry
		},
		DisableHeaderNamesNormalizing: true,
		Dial: func(addr string) (net.Conn, error) {
			c, err := dialer.Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			uc := &upstreamConn{Conn: c}
			uc.laddr.Addr, uc.laddr.c = c.LocalAddr(), uc
			return uc, nil
		},
	}
	return up, nil
}

// hopHeaders are meaningful for one connection only (RFC 9110 7.6.1) and
// never forwarded, in either direction; so are the headers a Connection
// header names.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

type headerDeleter interface {
	Peek(key string) []byte
	Del(key string)
}

func dropHopHeaders(h headerDeleter, connection []byte) {
	for _, name := range bytes.Split(connection, []byte(",")) {
		if name = bytes.TrimSpace(name); len(name) > 0 {
			h.Del(string(name))
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// serve proxies ctx's request and arranges for the response body to be
// streamed after the handler returns.
func (u *Proxy) Serve(ctx *fasthttp.RequestCtx) {
	if len(ctx.Request.Header.Peek("Upgrade")) > 0 {
		WriteJSONError(ctx, fasthttp.StatusNotImplemented, "protocol upgrades are served on /ws only")
		return
	}
	cl := ctx.Request.Header.ContentLength()
	if cl > u.maxBody {
		u.fail(ctx, BodyTooLarge, fasthttp.StatusRequestEntityTooLarge,
			"request body of "+strconv.Itoa(cl)+" bytes exceeds upstream.max_body_bytes "+strconv.Itoa(u.maxBody), nil)
		return
	}
	u.active.Add(1)
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	connection := append([]byte(nil), ctx.Request.Header.Peek("Connection")...)
	ctx.Request.Header.CopyTo(&req.Header)
	dropHopHeaders(&req.Header, connection)
	req.Header.ResetConnectionClose()
	req.Header.SetProtocolBytes(http11) // whatever the client spoke, this hop is HTTP/1.1
	uri := req.URI()
	uri.SetScheme(u.scheme)
	uri.SetHost(u.host)
	uri.SetPath(u.basePath + string(ctx.Path()))
	uri.SetQueryStringBytes(ctx.URI().QueryString())
	setForwarded(&req.Header, ctx)

	switch stream := ctx.RequestBodyStream(); {
	case cl == 0 || cl == -2: // no body
		req.Header.SetContentLength(0)
	case stream != nil:
		req.SetBodyStream(&limitReader{r: stream, left: u.maxBody}, cl)
	default:
		body := ctx.Request.Body()
		if len(body) > u.maxBody {
			u.active.Add(-1)
			u.failErr(ctx, errUpstreamBodyTooLarge)
			return
		}
		req.SetBodyRaw(body)
	}

	resp := fasthttp.AcquireResponse()
	err := u.client.Do(req, resp)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		u.active.Add(-1)
		u.failErr(ctx, err)
		return
	}
	u.requests.Add(1)
	connection = append(connection[:0], resp.Header.Peek("Connection")...)
	resp.Header.CopyTo(&ctx.Response.Header)
	dropHopHeaders(&ctx.Response.Header, connection)
	ctx.Response.Header.ResetConnectionClose()
	ctx.Response.Header.SetProtocol(http11) // not the upstream's: this hop is the server's

	body := resp.BodyStream()
	if body == nil { // HEAD, 204, 304: headers only
		fasthttp.ReleaseResponse(resp)
		u.active.Add(-1)
		return
	}
	if a, ok := resp.LocalAddr().(*upstreamAddr); ok {
		a.c.idle.Store(int64(u.idle)) // body: idle_timeout between reads
	}
	size := resp.Header.ContentLength()
	if size < 0 {
		size = -1 // chunked to the client, each chunk flushed
	}
	b := &upstreamBody{u: u, resp: resp, body: body, conn: ctx.Conn()}
	if !u.track(b) { // shutting down
		_ = b.CloseWithError(ErrShuttingDown)
		WriteJSONError(ctx, fasthttp.StatusServiceUnavailable, "server shutting down")
		return
	}
	ctx.Response.ImmediateHeaderFlush = true
	ctx.Response.SetBodyStream(b, size)
}

// ErrShuttingDown ends the responses still streaming when the server shuts
// down.
var ErrShuttingDown = errors.New("proxy: server shutting down")

// setForwarded appends the client's address to X-Forwarded-For and states
// the scheme and host the client used.
func setForwarded(h *fasthttp.RequestHeader, ctx *fasthttp.RequestCtx) {
	ip := ctx.RemoteIP().String()
	if prior := h.Peek("X-Forwarded-For"); len(prior) > 0 {
		ip = string(prior) + ", " + ip
	}
	h.Set("X-Forwarded-For", ip)
	proto := "http"
	if ctx.IsTLS() {
		proto = "https"
	}
	h.Set("X-Forwarded-Proto", proto)
	h.SetBytesV("X-Forwarded-Host", ctx.Host())
}

func (u *Proxy) failErr(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, errUpstreamBodyTooLarge):
		u.fail(ctx, BodyTooLarge, fasthttp.StatusRequestEntityTooLarge,
			"request body exceeds upstream.max_body_bytes "+strconv.Itoa(u.maxBody), nil)
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		u.fail(ctx, Busy, fasthttp.StatusServiceUnavailable, "upstream busy", err)
	case errors.Is(err, fasthttp.ErrTimeout):
		u.fail(ctx, Timeout, fasthttp.StatusGatewayTimeout, "upstream timeout", err)
	default:
		u.fail(ctx, Unavailable, fasthttp.StatusBadGateway, "upstream unavailable", err)
	}
}

// fail counts reason and answers status with {"error": msg}. The cause
// (addresses, errno) is logged, at most one warning a second, and not
// shown to the client.
func (u *Proxy) fail(ctx *fasthttp.RequestCtx, reason string, status int, msg string, cause error) {
	u.count(reason)
	if cause != nil {
		now := time.Now().UnixNano()
		if last := u.lastWarn.Load(); now-last >= int64(time.Second) && u.lastWarn.CompareAndSwap(last, now) {
			u.log.Warn().Err(cause).Str("reason", reason).Str("path", string(ctx.Path())).Msg("upstream request failed")
		}
	}
	WriteJSONError(ctx, status, msg)
}

func (u *Proxy) count(reason string) {
	for i, r := range Reasons {
		if r == reason {
			u.errs[i].Add(1)
			return
		}
	}
}

func WriteJSONError(ctx *fasthttp.RequestCtx, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}

func (u *Proxy) Stats() Stats {
	st := Stats{Enabled: true, Requests: u.requests.Load(), Active: u.active.Load(),
		Errors: make(map[string]uint64, len(Reasons))}
	for i, r := range Reasons {
		st.Errors[r] = u.errs[i].Load()
	}
	return st
}

func (u *Proxy) track(b *upstreamBody) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.streams[b] = struct{}{}
	return true
}

// closeStreams ends every response still streaming (shutdown: fasthttp
// waits for them otherwise) and refuses new ones.
func (u *Proxy) CloseStreams() {
	u.stopping.Store(true)
	u.mu.Lock()
	u.closed = true
	bodies := make([]*upstreamBody, 0, len(u.streams))
	for b := range u.streams {
		bodies = append(bodies, b)
	}
	u.mu.Unlock()
	for _, b := range bodies {
		b.interrupt()
	}
}

// upstreamBody is the response body handed to fasthttp: it reads the
// upstream's body and, before each chunk is written to the client, sets
// that write's deadline. fasthttp reads and closes it on the client
// connection's goroutine; interrupt may be called from any goroutine.
type upstreamBody struct {
	u       *Proxy
	resp    *fasthttp.Response
	body    io.Reader
	conn    net.Conn
	once    sync.Once
	aborted atomic.Bool
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 {
		_ = b.conn.SetWriteDeadline(time.Now().Add(b.u.writeTimeout))
	}
	if err != nil && !errors.Is(err, io.EOF) && !b.u.stopping.Load() && !b.aborted.Swap(true) {
		b.u.count(Aborted)
	}
	return n, err
}

// interrupt makes a blocked Read fail at once.
func (b *upstreamBody) interrupt() {
	if c, ok := b.body.(fasthttp.ReadCloserWithError); ok {
		_ = c.CloseWithError(ErrShuttingDown)
	}
}

// CloseWithError releases the upstream response; err is why fasthttp
// stopped (nil: body complete), a failed client write included.
func (b *upstreamBody) CloseWithError(err error) error {
	b.once.Do(func() {
		if c, ok := b.body.(fasthttp.ReadCloserWithError); ok {
			_ = c.CloseWithError(err)
		}
		fasthttp.ReleaseResponse(b.resp)
		b.u.mu.Lock()
		delete(b.u.streams, b)
		b.u.mu.Unlock()
		b.u.active.Add(-1)
	})
	return nil
}

// limitReader fails a streamed request body past its limit.
type limitReader struct {
	r    io.Reader
	left int
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errUpstreamBodyTooLarge
	}
	if len(p) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= n
	if l.left < 0 {
		return 0, errUpstreamBodyTooLarge
	}
	return n, err
}

// upstreamConn is a connection to the upstream. Once a response's headers
// are read, each Read of its body first moves the read deadline idle ahead
// (fasthttp's ReadTimeout covers the headers only); fasthttp's next
// SetReadDeadline, for the next request, ends that mode.
type upstreamConn struct {
	net.Conn
	laddr upstreamAddr
	idle  atomic.Int64
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	if d := time.Duration(c.idle.Load()); d > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	}
	return c.Conn.Read(p)
}

func (c *upstreamConn) SetReadDeadline(t time.Time) error {
	c.idle.Store(0)
	return c.Conn.SetReadDeadline(t)
}

func (c *upstreamConn) SetDeadline(t time.Time) error {
	c.idle.Store(0)
	return c.Conn.SetDeadline(t)
}

// LocalAddr lets serve find the connection a response came on
// (fasthttp.Response.LocalAddr).
func (c *upstreamConn) LocalAddr() net.Addr { return &c.laddr }

type upstreamAddr struct {
	net.Addr
	c *upstreamConn
}
