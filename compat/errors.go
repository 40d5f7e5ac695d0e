package compat

// Error codes sent in the "code" field of an error message. Clients match on
// these strings, so they are part of the wire contract and never change.
const (
	// CodeInvalidMessage: the frame is not JSON (answered with
	// MessageInvalidFormat), or not an object or without a string "type"
	// (silent).
	CodeInvalidMessage = "INVALID_MESSAGE"
	// CodeUnknownMessageType: "type" is a string the server does not know
	// (silent).
	CodeUnknownMessageType = "UNKNOWN_MESSAGE_TYPE"
	// CodeInvalidFilter: a subscribe or unsubscribe payload has wrong field
	// types, an unknown channel or data type, or over-long values.
	CodeInvalidFilter = "INVALID_FILTER"
	// CodeLimitExceeded: too many filters or symbols for one connection.
	CodeLimitExceeded = "LIMIT_EXCEEDED"
	// CodeRateLimitExceeded: the client sends messages faster than allowed.
	CodeRateLimitExceeded = "RATE_LIMIT_EXCEEDED"
	// CodeInternalError: the server failed for reasons not caused by the
	// client.
	CodeInternalError = "INTERNAL_ERROR"
)

// Error is a protocol error meant to be reported to the client with
// [AppendError]. It carries the wire code separately from the text so that
// callers never have to parse a message to learn what went wrong, and a bad
// message can be answered without closing the connection.
type Error struct {
	// Code is one of the Code* constants.
	Code string
	// Message is a human-readable explanation sent to the client as is.
	Message string
	// Silent errors get no reply: the legacy servers answered such frames
	// with nothing ([], "str", {}, an unknown or wrong-case type, subscribe
	// without an object payload). They are still bad client frames, to be
	// counted under Code.
	Silent bool
}

// Error formats e for logs; clients receive Code and Message separately.
func (e *Error) Error() string {
	return "compat: " + e.Code + ": " + e.Message
}

func newError(code, message string) *Error {
	return &Error{Code: code, Message: message}
}

func silentError(code, message string) *Error {
	return &Error{Code: code, Message: message, Silent: true}
}

// MessageInvalidFormat is the legacy server's text for a frame that is not
// JSON (or is JSON null).
const MessageInvalidFormat = "Invalid message format"
