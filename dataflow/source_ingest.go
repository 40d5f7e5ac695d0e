package dataflow

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"
)

// IngestPath is where the HTTP ingest endpoint is served.
const IngestPath = "/api/dataflow/ingest"

// IngestConfig configures the HTTP ingest endpoint (POST IngestPath).
type IngestConfig struct {
	// Enabled turns the endpoint on. Zero value: off (404).
	Enabled bool `yaml:"enabled"`
	// Token, when set, must be sent as "Authorization: Bearer <token>" (or
	// the X-Ingest-Token header). "": no token required.
	Token string `yaml:"token"`
	// MaxBodyBytes is the largest request body accepted (413 beyond). The
	// HTTP server never reads more than 8 MiB. Default 1 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxErrors is how many per-line errors one answer lists (all are
	// counted in "rejected"). Default 100.
	MaxErrors int `yaml:"max_errors"`
	// DefaultExchange is the exchange of a message that names none (the
	// legacy collector used its adapter's name). "": such messages are
	// forwarded without an exchange.
	DefaultExchange string `yaml:"default_exchange"`
}

// MaxIngestBody is the largest body the HTTP server reads at all.
const MaxIngestBody = 8 << 20

// Ingest is the HTTP ingest source for collectors that cannot reach Redis:
// each request carries NDJSON (one MarketData per line) or a JSON array of
// MarketData. It is a Source (started by the server like the others) and
// serves requests through Handler. Safe for concurrent use.
type Ingest struct {
	cfg IngestConfig
	c   counters

	att attachment
}

var _ Source = (*Ingest)(nil)

// NewIngest returns the endpoint; cfg comes with its defaults applied
// (config.ApplyDefaults).
func NewIngest(cfg IngestConfig) (*Ingest, error) {
	if err := checkPositive(setting{"sources.ingest.max_body_bytes", int64(cfg.MaxBodyBytes)},
		setting{"sources.ingest.max_errors", int64(cfg.MaxErrors)}); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes > MaxIngestBody {
		return nil, fmt.Errorf("%w: sources.ingest.max_body_bytes %d exceeds %d", ErrConfig, cfg.MaxBodyBytes, MaxIngestBody)
	}
	in := &Ingest{cfg: cfg}
	in.c.name, in.c.typ = "ingest", "http"
	return in, nil
}

// Name implements Source.
func (in *Ingest) Name() string { return in.c.name }

// Stats implements Source.
func (in *Ingest) Stats() SourceStatus { return in.c.status() }

// Run attaches the endpoint to sink until ctx ends; requests before or
// after are answered 503.
func (in *Ingest) Run(ctx context.Context, sink Sink) error {
	in.att.run(ctx, &in.c, sink)
	return nil
}

// IngestError is one rejected line of an ingest request. Line is 1-based
// (the array index + 1 for a JSON array); 0 means the whole body.
type IngestError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// IngestResult is the answer to an ingest request.
type IngestResult struct {
	Accepted int           `json:"accepted"`
	Rejected int           `json:"rejected"`
	Errors   []IngestError `json:"errors"`
}

// Handler returns the fasthttp handler of POST /api/dataflow/ingest.
func (in *Ingest) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			in.answer(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use POST")
			return
		}
		if !in.authorized(ctx) {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="ingest"`)
			in.answer(ctx, fasthttp.StatusUnauthorized, "missing or wrong ingest token")
			return
		}
		body := ctx.PostBody()
		if len(body) > in.cfg.MaxBodyBytes {
			in.answer(ctx, fasthttp.StatusRequestEntityTooLarge,
				"body of "+strconv.Itoa(len(body))+" bytes exceeds max_body_bytes "+strconv.Itoa(in.cfg.MaxBodyBytes))
			return
		}
		sink := in.att.get()
		if sink == nil {
			in.answer(ctx, fasthttp.StatusServiceUnavailable, "ingest is not running")
			return
		}
		body = bytes.TrimSpace(body)
		if len(body) == 0 {
			in.answer(ctx, fasthttp.StatusBadRequest, "empty body: send NDJSON or a JSON array of MarketData")
			return
		}
		var res IngestResult
		if body[0] == '[' {
			var items []json.RawMessage
			if err := json.Unmarshal(body, &items); err != nil {
				in.answer(ctx, fasthttp.StatusBadRequest, "body is not a valid JSON array: "+err.Error())
				return
			}
			for i, it := range items {
				in.one(sink, &res, i+1, it)
			}
		} else {
			line := 0
			for len(body) > 0 {
				var l []byte
				l, body, _ = bytes.Cut(body, []byte{'\n'})
				line++
				if len(bytes.TrimSpace(l)) == 0 {
					continue
				}
				in.one(sink, &res, line, l)
			}
		}
		if res.Errors == nil {
			res.Errors = []IngestError{}
		}
		writeIngest(ctx, fasthttp.StatusOK, res)
	}
}

func (in *Ingest) one(sink Sink, res *IngestResult, line int, b []byte) {
	md, err := DecodeWith(b, in.cfg.DefaultExchange)
	if err != nil {
		in.c.reject(fmt.Errorf("line %d: %w", line, err))
		res.addError(line, err.Error(), in.cfg.MaxErrors)
		return
	}
	before := in.c.dropped.Load()
	in.c.deliver(sink, &md)
	if in.c.dropped.Load() != before {
		res.addError(line, ErrBackpressure.Error(), in.cfg.MaxErrors)
		return
	}
	res.Accepted++
}

func (r *IngestResult) addError(line int, reason string, maxErrors int) {
	r.Rejected++
	if len(r.Errors) < maxErrors {
		r.Errors = append(r.Errors, IngestError{Line: line, Reason: reason})
	}
}

func (in *Ingest) authorized(ctx *fasthttp.RequestCtx) bool {
	if in.cfg.Token == "" {
		return true
	}
	got := ctx.Request.Header.Peek("X-Ingest-Token")
	if auth := ctx.Request.Header.Peek("Authorization"); len(auth) > 7 && bytes.EqualFold(auth[:7], []byte("Bearer ")) {
		got = auth[7:]
	}
	return subtle.ConstantTimeCompare(got, []byte(in.cfg.Token)) == 1
}

// answer writes a whole-request failure in the result shape.
func (in *Ingest) answer(ctx *fasthttp.RequestCtx, status int, reason string) {
	writeIngest(ctx, status, IngestResult{Errors: []IngestError{{Line: 0, Reason: reason}}})
}

func writeIngest(ctx *fasthttp.RequestCtx, status int, res IngestResult) {
	b, _ := json.Marshal(res) // plain structs: cannot fail
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}
