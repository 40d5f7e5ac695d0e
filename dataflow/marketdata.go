package dataflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxFieldLen bounds exchange, symbol and type so that one bad producer cannot
// inflate index keys or frames.
const MaxFieldLen = 64

// DefaultType is the type of a message that has none (or an empty one), as
// the legacy collector named it.
const DefaultType = "market_data"

// Validation errors. They wrap ErrInvalid so callers can count every rejection
// under one reason while still reporting the precise cause. The pipeline's
// input is as lenient as the legacy server (PROTOCOL.md, "The pipeline's
// message"): only what is not a JSON object, or has a field of the wrong
// JSON type, is rejected.
var (
	ErrInvalid      = errors.New("dataflow: invalid market data")
	ErrNotJSON      = fmt.Errorf("%w: not a JSON object", ErrInvalid)
	ErrFieldType    = fmt.Errorf("%w: exchange, symbol and type must be strings", ErrInvalid)
	ErrFieldTooLong = fmt.Errorf("%w: exchange, symbol or type longer than 64 bytes", ErrInvalid)
)

// MarketData is the normalised message the collector pipeline produces
// (shared/PROTOCOL.md, "The pipeline's message"). Data and Metadata are kept as
// the raw bytes the pipeline produced: wsproxy passes them through untouched
// and never re-encodes them.
//
// Absent keys stay absent on the wire: an empty Symbol or Exchange and an
// empty Data are not forwarded (Data holding null is forwarded as null).
type MarketData struct {
	Exchange string `json:"exchange"`
	Symbol   string `json:"symbol"`
	Type     string `json:"type"`
	// Timestamp is the pipeline's timestamp when it is an integer.
	Timestamp int64 `json:"timestamp"`
	// TimestampRaw, when set, is forwarded instead of Timestamp: the
	// pipeline's value as it was (a fraction, an ISO string), or the ISO
	// time of arrival when the pipeline gave none.
	TimestampRaw json.RawMessage `json:"-"`
	ReceivedAt   int64           `json:"receivedAt,omitempty"`
	Data         json.RawMessage `json:"data"`
	Metadata     json.RawMessage `json:"metadata,omitempty"`
}

// wireMarketData decodes leniently: every field may be absent or of an
// unexpected number form.
type wireMarketData struct {
	Exchange   *string         `json:"exchange"`
	Symbol     *string         `json:"symbol"`
	Type       *string         `json:"type"`
	Timestamp  json.RawMessage `json:"timestamp"`
	ReceivedAt json.RawMessage `json:"receivedAt"`
	Data       json.RawMessage `json:"data"`
	Metadata   json.RawMessage `json:"metadata"`
}

// Decode parses one MarketData JSON object with the legacy defaults applied
// (Normalize with no default exchange). The returned value owns its memory
// (it does not alias b).
func Decode(b []byte) (MarketData, error) {
	return DecodeWith(b, "")
}

// DecodeWith is Decode with the source's default exchange for messages that
// name none.
func DecodeWith(b []byte, defaultExchange string) (MarketData, error) {
	var md MarketData
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return md, ErrNotJSON
	}
	var w wireMarketData
	if err := json.Unmarshal(b, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return MarketData{}, ErrFieldType
		}
		return MarketData{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if w.Exchange != nil {
		md.Exchange = *w.Exchange
	}
	if w.Symbol != nil {
		md.Symbol = *w.Symbol
	}
	if w.Type != nil {
		md.Type = *w.Type
	}
	md.Data = w.Data
	if len(w.Metadata) > 0 && !bytes.Equal(w.Metadata, []byte("null")) {
		md.Metadata = w.Metadata
	}
	if n, ok := parseNumber(w.ReceivedAt); ok && n > 0 && n < math.MaxInt64 {
		md.ReceivedAt = int64(n)
	}
	md.setTimestamp(w.Timestamp)
	if err := md.Normalize(defaultExchange, time.Now()); err != nil {
		return MarketData{}, err
	}
	return md, nil
}

// setTimestamp keeps an integer timestamp in Timestamp and any other truthy
// value as it was in TimestampRaw. A falsy one (absent, 0, "", false, null)
// is left for Normalize to replace.
func (md *MarketData) setTimestamp(raw json.RawMessage) {
	raw = bytes.TrimSpace(raw)
	switch s := string(raw); s {
	case "", "0", "-0", `""`, "false", "null":
		return
	}
	if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		md.Timestamp = i
		return
	}
	if f, ok := parseNumber(raw); ok && f == 0 {
		return // 0.0, 0e0: falsy
	}
	md.TimestampRaw = append(json.RawMessage(nil), raw...)
}

func parseNumber(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	return f, err == nil
}

// Normalize applies the legacy collector's defaults to md: an empty type
// becomes "market_data", an empty exchange the source's defaultExchange,
// and a missing (zero) timestamp the ISO time now, as the legacy server
// stamped it. It rejects only fields longer than MaxFieldLen. Every source
// calls it (through Decode or Validate) before a message enters the proxy.
func (md *MarketData) Normalize(defaultExchange string, now time.Time) error {
	if strings.TrimSpace(md.Type) == "" {
		md.Type = DefaultType
	}
	if md.Exchange == "" {
		md.Exchange = defaultExchange
	}
	if len(md.Exchange) > MaxFieldLen || len(md.Symbol) > MaxFieldLen || len(md.Type) > MaxFieldLen {
		return ErrFieldTooLong
	}
	if md.Timestamp == 0 && len(md.TimestampRaw) == 0 {
		md.TimestampRaw = AppendISOTime(nil, now)
	}
	return nil
}

// Validate normalises an in-process message (Normalize with no default
// exchange, at the current time) and reports a field that is too long.
func (md *MarketData) Validate() error {
	return md.Normalize("", time.Now())
}

// AppendISOTime appends t as the JSON string JavaScript's toISOString gives
// ("2026-12-01T09:28:19.674Z": UTC, milliseconds).
func AppendISOTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	return append(dst, '"')
}
