package compat

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Legacy channel names. The channel form of subscribe and unsubscribe
// accepts any string, as the legacy server did; deployed clients send
// ChannelMarketData.
const (
	ChannelMarketData       = "marketData"
	ChannelConnectionStatus = "connectionStatus"
	ChannelMetrics          = "metrics"
)

// Kind identifies what a client message asks for. The zero value is not a
// valid kind, so a forgotten assignment cannot pass for a ping.
type Kind int

// Client message kinds, one per accepted value of "type".
const (
	KindPing Kind = iota + 1
	KindSubscribe
	KindUnsubscribe
	KindGetStats
)

// String returns the wire name of k ("ping", "subscribe", ...), which is also
// what logs and metrics should use as a label.
func (k Kind) String() string {
	switch k {
	case KindPing:
		return "ping"
	case KindSubscribe:
		return "subscribe"
	case KindUnsubscribe:
		return "unsubscribe"
	case KindGetStats:
		return "getStats"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// FilterSpec is the filter of a subscribe message exactly as the client sent
// it. Values are not normalised (case, symbol separators) because the
// subscription layer owns matching rules and echoes the filter back in
// "subscribed". A field is nil when absent or null, and a non-nil empty slice
// when the client sent []; both match everything.
type FilterSpec struct {
	Exchange  []string
	Symbols   []string
	DataTypes []string
}

// ClientMessage is one decoded client frame. Which fields are meaningful
// depends on Kind:
//
//   - KindPing, KindGetStats: none; any payload is ignored.
//   - KindSubscribe: Channel for the legacy channel form, otherwise Filter.
//   - KindUnsubscribe: Channel for the legacy channel form, otherwise FilterID
//     ("" means remove every filter).
type ClientMessage struct {
	Kind Kind
	// Type is the raw "type" string as sent.
	Type string
	// Channel is the channel of the legacy channel form (any string, as
	// sent), "" for the filter form.
	Channel string
	// Filter is the subscribe filter (filter form only).
	Filter FilterSpec
	// FilterID is the unsubscribe "filterId": a string as sent, or the text of
	// a number (integers in canonical decimal form, so 7, 7.0 and 7e0 are all
	// "7"). "" means all filters, which is also what an empty string or an
	// absent filterId asks for.
	FilterID string
}

// maxTypeEcho bounds how much of an unknown "type" is echoed back in an
// error, so a client cannot make the server reflect large strings.
const maxTypeEcho = 64

// DecodeClient parses one client text frame (a binary frame's bytes are
// read as text too, as the legacy server did).
//
// The answers follow the recorded legacy servers (PROTOCOL.md):
//
//   - not JSON, or JSON null: an *Error with CodeInvalidMessage and
//     MessageInvalidFormat, to be answered;
//   - any other non-object, an object without a string "type", an unknown or
//     wrong-case type: a Silent *Error (CodeInvalidMessage,
//     CodeUnknownMessageType), to be counted and not answered;
//   - subscribe without a payload object, or with a "channel" that is not a
//     string: a Silent *Error with CodeInvalidFilter;
//   - a filter field (exchange, symbols, dataTypes) that is not an array of
//     strings, or a filterId neither string nor number: an *Error with
//     CodeInvalidFilter, answered (an extension).
//
// Leniency follows what deployed clients send: "timestamp" may be anything and
// is ignored, unknown fields are ignored, and a JSON null counts as absent (for
// payload and every payload field). When "channel" is present the message is
// in channel form (any string, as the legacy server accepted) and the other
// payload fields are ignored. An unsubscribe without payload removes every
// filter.
//
// Only structure is checked here. Limits and lengths are checked by the
// subscription layer, which knows the configured limits. Keys are matched
// case-sensitively, as the legacy server did.
func DecodeClient(b []byte) (ClientMessage, *Error) {
	if !json.Valid(b) {
		return ClientMessage{}, newError(CodeInvalidMessage, MessageInvalidFormat)
	}
	switch firstByte(b) {
	case '{':
	case 'n':
		return ClientMessage{}, newError(CodeInvalidMessage, MessageInvalidFormat)
	default:
		return ClientMessage{}, silentError(CodeInvalidMessage, "message is not a JSON object")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return ClientMessage{}, silentError(CodeInvalidMessage, "message is not a JSON object")
	}

	rawType, ok := top["type"]
	if !ok || isNull(rawType) {
		return ClientMessage{}, silentError(CodeInvalidMessage, `message has no "type"`)
	}
	var typ string
	if firstByte(rawType) != '"' || json.Unmarshal(rawType, &typ) != nil {
		return ClientMessage{}, silentError(CodeInvalidMessage, `"type" must be a string`)
	}

	msg := ClientMessage{Type: typ}
	switch typ {
	case "ping":
		msg.Kind = KindPing
		return msg, nil
	case "getStats":
		msg.Kind = KindGetStats
		return msg, nil
	case "subscribe":
		msg.Kind = KindSubscribe
	case "unsubscribe":
		msg.Kind = KindUnsubscribe
	default:
		return ClientMessage{}, silentError(CodeUnknownMessageType,
			fmt.Sprintf("unknown message type %q", truncate(typ, maxTypeEcho)))
	}

	payload, perr := decodeObject(top["payload"])
	if perr != nil || (payload == nil && msg.Kind == KindSubscribe) {
		return ClientMessage{}, silentError(CodeInvalidFilter, `"payload" must be an object`)
	}
	if raw, ok := field(payload, "channel"); ok {
		var ch string
		if firstByte(raw) != '"' || json.Unmarshal(raw, &ch) != nil || ch == "" {
			return ClientMessage{}, silentError(CodeInvalidFilter, `"payload.channel" must be a non-empty string`)
		}
		msg.Channel = ch
		return msg, nil
	}

	if msg.Kind == KindSubscribe {
		for _, f := range [...]struct {
			name string
			dst  *[]string
		}{
			{"exchange", &msg.Filter.Exchange},
			{"symbols", &msg.Filter.Symbols},
			{"dataTypes", &msg.Filter.DataTypes},
		} {
			raw, ok := field(payload, f.name)
			if !ok {
				continue
			}
			v, err := decodeStrings(f.name, raw)
			if err != nil {
				return ClientMessage{}, err
			}
			*f.dst = v
		}
		return msg, nil
	}

	if raw, ok := field(payload, "filterId"); ok {
		id, err := decodeFilterID(raw)
		if err != nil {
			return ClientMessage{}, err
		}
		msg.FilterID = id
	}
	return msg, nil
}

// decodeObject decodes a payload object. Absent and null give a nil map,
// which behaves as an empty payload.
func decodeObject(raw json.RawMessage) (map[string]json.RawMessage, *Error) {
	if raw == nil || isNull(raw) {
		return nil, nil
	}
	if firstByte(raw) != '{' {
		return nil, newError(CodeInvalidFilter, `"payload" must be an object`)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, newError(CodeInvalidFilter, `"payload" must be an object`)
	}
	return m, nil
}

// field returns m[name] unless it is absent or null.
func field(m map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := m[name]
	if !ok || isNull(raw) {
		return nil, false
	}
	return raw, true
}

// decodeStrings decodes an array whose elements are all strings. Element by
// element, because encoding/json would silently turn a null element into "".
func decodeStrings(name string, raw json.RawMessage) ([]string, *Error) {
	bad := newError(CodeInvalidFilter, `"payload.`+name+`" must be an array of strings`)
	if firstByte(raw) != '[' {
		return nil, bad
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, bad
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if firstByte(e) != '"' {
			return nil, bad
		}
		if err := json.Unmarshal(e, &out[i]); err != nil {
			return nil, bad
		}
	}
	return out, nil
}

func decodeFilterID(raw json.RawMessage) (string, *Error) {
	switch c := firstByte(raw); {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, nil
		}
	case c == '-' || ('0' <= c && c <= '9'):
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return canonicalNumber(n.String()), nil
		}
	}
	return "", newError(CodeInvalidFilter, `"payload.filterId" must be a string or a number`)
}

// canonicalNumber renders integral numbers in plain decimal so that a client
// sending 7, 7.0 or 7e0 names the same filter "7". Other numbers keep their
// text as sent.
func canonicalNumber(s string) string {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	const maxExact = 1 << 53 // largest range where float64 integers are exact
	if f, err := strconv.ParseFloat(s, 64); err == nil &&
		f == math.Trunc(f) && math.Abs(f) <= maxExact {
		return strconv.FormatInt(int64(f), 10)
	}
	return s
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// firstByte returns the first non-whitespace byte of b, or 0.
func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

func isNull(raw json.RawMessage) bool {
	return firstByte(raw) == 'n'
}
