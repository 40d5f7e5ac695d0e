package dataflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxFieldLen bounds exchange, symbol and type so that one bad producer cannot
// inflate index keys or frames.
const MaxFieldLen = 64

// Validation errors. They wrap ErrInvalid so callers can count every rejection
// under one reason while still reporting the precise cause.
var (
	ErrInvalid         = errors.New("dataflow: invalid market data")
	ErrNotJSON         = fmt.Errorf("%w: not a JSON object", ErrInvalid)
	ErrMissingExchange = fmt.Errorf("%w: missing exchange", ErrInvalid)
	ErrMissingSymbol   = fmt.Errorf("%w: missing symbol", ErrInvalid)
	ErrMissingType     = fmt.Errorf("%w: missing type", ErrInvalid)
	ErrMissingTime     = fmt.Errorf("%w: missing or non-positive timestamp", ErrInvalid)
	ErrMissingData     = fmt.Errorf("%w: missing data", ErrInvalid)
	ErrFieldTooLong    = fmt.Errorf("%w: exchange, symbol or type longer than 64 bytes", ErrInvalid)
)

// MarketData is the normalised message the collector pipeline produces
// (shared/PROTOCOL.md, "The pipeline's message"). Data and Metadata are kept as
// the raw bytes the pipeline produced: wsproxy passes them through untouched
// and never re-encodes them.
type MarketData struct {
	Exchange   string          `json:"exchange"`
	Symbol     string          `json:"symbol"`
	Type       string          `json:"type"`
	Timestamp  int64           `json:"timestamp"`
	ReceivedAt int64           `json:"receivedAt,omitempty"`
	Data       json.RawMessage `json:"data"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

// Decode parses and validates one MarketData JSON object. The returned value
// owns its memory (it does not alias b).
func Decode(b []byte) (MarketData, error) {
	var md MarketData
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return md, ErrNotJSON
	}
	if err := json.Unmarshal(b, &md); err != nil {
		return MarketData{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := md.Validate(); err != nil {
		return MarketData{}, err
	}
	return md, nil
}

// Validate reports whether md carries every required field. It is called by
// every source before a message enters the proxy, so that nothing downstream
// has to defend against half-formed messages.
func (md *MarketData) Validate() error {
	switch {
	case strings.TrimSpace(md.Exchange) == "":
		return ErrMissingExchange
	case strings.TrimSpace(md.Symbol) == "":
		return ErrMissingSymbol
	case strings.TrimSpace(md.Type) == "":
		return ErrMissingType
	case len(md.Exchange) > MaxFieldLen || len(md.Symbol) > MaxFieldLen || len(md.Type) > MaxFieldLen:
		return ErrFieldTooLong
	case md.Timestamp <= 0:
		return ErrMissingTime
	}
	d := bytes.TrimSpace(md.Data)
	if len(d) == 0 || bytes.Equal(d, []byte("null")) {
		return ErrMissingData
	}
	return nil
}
