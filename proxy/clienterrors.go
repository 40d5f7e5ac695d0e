package proxy

import (
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/compat"
	"wsproxy/config"
	"wsproxy/internal/admission"
	"wsproxy/internal/tokenbucket"
)

// ClientErrorReason says what a client did wrong. Client errors are the
// clients' problem, not the node's: they are counted here (the
// client_errors_total{reason} series, Server.ClientErrors) and on the
// connection (ConnStats.Errors), and never enter health or readiness.
type ClientErrorReason int

// Client error reasons, the keys of Server.ClientErrors.
const (
	// Frames the session could not use ("bad frames", which count against
	// limits.max_bad_frames_per_minute).
	ClientInvalidMessage ClientErrorReason = iota // not JSON, not an object, no string "type"
	ClientUnknownType                             // a "type" the protocol does not know
	ClientInvalidFilter                           // a malformed subscribe/unsubscribe payload
	ClientLimitExceeded                           // a filter over limits.max_*
	ClientBinaryFrame                             // a binary frame where JSON text is expected
	// Frames that end the connection or are refused before processing.
	ClientRateLimited   // a message over limits.message_rate
	ClientInvalidUTF8   // a text frame that is not UTF-8 (close 1007)
	ClientProtocolError // a frame RFC 6455 forbids (close 1002)
	ClientTooBig        // a frame over max_payload (close 1009)
	// The client went away under a write: a reset, or it stopped reading
	// until write_timeout (counted by the pool, pool.Stats).
	ClientReset
	ClientWriteTimeout
	numClientReasons
)

var clientReasonNames = [numClientReasons]string{
	"invalid_message", "unknown_type", "invalid_filter", "limit_exceeded", "binary_frame",
	"rate_limited", "invalid_utf8", "protocol_error", "message_too_big",
	"client_reset", "write_timeout",
}

func (r ClientErrorReason) String() string { return clientReasonNames[r] }

// badFrame reports whether r counts against the bad-frame budget.
func (r ClientErrorReason) badFrame() bool { return r <= ClientBinaryFrame }

// clientReason maps the error code of a reply to its reason.
func clientReason(code string) ClientErrorReason {
	switch code {
	case compat.CodeUnknownMessageType:
		return ClientUnknownType
	case compat.CodeInvalidFilter:
		return ClientInvalidFilter
	case compat.CodeLimitExceeded:
		return ClientLimitExceeded
	}
	return ClientInvalidMessage
}

// reasonErrorBudget is the close reason of a client over
// limits.max_bad_frames_per_minute.
const reasonErrorBudget = "Too many invalid messages"

// clientErrors is the node's tally of client errors. Safe for concurrent use.
type clientErrors struct {
	n [numClientReasons]atomic.Uint64
	// budgetCloses counts connections closed for going over the bad-frame
	// budget.
	budgetCloses atomic.Uint64
}

// ClientErrors returns every client-caused event since start by reason:
// the ClientErrorReason names, plus the upgrade refusals of Rejections
// (origin, auth, per-address and connect rates) under their Reject* names.
func (s *Server) ClientErrors() map[string]uint64 {
	out := make(map[string]uint64, int(numClientReasons)+len(admission.Reasons))
	for i := range s.clientErrs.n {
		out[ClientErrorReason(i).String()] = s.clientErrs.n[i].Load()
	}
	ps := s.pool.Stats()
	out[ClientReset.String()] += ps.ClientResets
	out[ClientWriteTimeout.String()] += ps.WriteTimeouts
	for k, v := range s.guard.Rejections() {
		out[k] = v
	}
	return out
}

// ErrorBudgetCloses returns how many connections were closed with 1008 for
// sending more than limits.max_bad_frames_per_minute bad frames.
func (s *Server) ErrorBudgetCloses() uint64 { return s.clientErrs.budgetCloses.Load() }

// clientTotal is the sum of the client errors the sessions counted (for
// the legacy errorsEncountered figure).
func (s *Server) clientTotal() uint64 {
	var n uint64
	for i := range s.clientErrs.n {
		n += s.clientErrs.n[i].Load()
	}
	return n
}

// errorBudget is one connection's bad-frame budget: a token bucket of
// limits.max_bad_frames_per_minute tokens refilled over a minute, so that a
// client sending bad frames at or below that rate is never closed. Only the
// connection's read loop uses it.
type errorBudget struct {
	b  tokenbucket.Bucket
	on bool
}

func newErrorBudget(cfg config.LimitsConfig) errorBudget {
	if cfg.MaxBadFramesPerMinute <= 0 {
		return errorBudget{}
	}
	n := cfg.MaxBadFramesPerMinute
	return errorBudget{b: tokenbucket.New(float64(n)/60, n, time.Now()), on: true}
}

// clientError counts one client error of this connection, whatever reply
// (if any) the protocol gives it, and closes the connection with 1008 once
// its bad frames go over the budget. It reports whether the connection may
// go on.
func (ss *session) clientError(r ClientErrorReason) bool {
	ss.s.clientErrs.n[r].Add(1)
	ss.c.CountError()
	if !r.badFrame() || !ss.budget.on || ss.budget.b.Take(time.Now()) {
		return true
	}
	if !ss.c.Closing() {
		ss.s.clientErrs.budgetCloses.Add(1)
		ss.log.Info().Int("per_minute", int(ss.budget.b.Burst)).Msg("closing: bad-frame budget exceeded")
		ss.c.Close(websocket.ClosePolicyViolation, reasonErrorBudget)
	}
	return false
}
