package observe

import "wsproxy/compat"

// ClientErrorReason says what a client did wrong. Client errors are the
// clients' problem, not the node's: they are counted here (the
// client_errors_total{reason} series, Server.ClientErrors) and on the
// connection (ConnStats.Errors), and never enter health or readiness.
type ClientErrorReason int

// Client error reasons, the keys of proxy.Server.ClientErrors.
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
	// NumClientReasons is the number of reasons.
	NumClientReasons
)

var clientReasonNames = [NumClientReasons]string{
	"invalid_message", "unknown_type", "invalid_filter", "limit_exceeded", "binary_frame",
	"rate_limited", "invalid_utf8", "protocol_error", "message_too_big",
	"client_reset", "write_timeout",
}

func (r ClientErrorReason) String() string { return clientReasonNames[r] }

// BadFrame reports whether r counts against the bad-frame budget.
func (r ClientErrorReason) BadFrame() bool { return r <= ClientBinaryFrame }

// ClientReason maps the error code of a reply to its reason.
func ClientReason(code string) ClientErrorReason {
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
