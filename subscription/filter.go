package subscription

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DataTypes lists the data types the collector pipeline is known to
// produce. NewFilter accepts any data type (the pipeline defines the types,
// so one the proxy has not heard of is matched exactly); this list only
// says which kline_* types "kline" stands for. It is read without
// synchronisation: treat it as read-only.
var DataTypes = []string{"trade", "ticker", "depth", "orderbook", "kline_1m", "kline_5m", "kline_1h", "kline_1d"}

const (
	// KlineAlias is the data type a client sends to mean the literal type
	// "kline" and every kline_* type of DataTypes.
	KlineAlias  = "kline"
	klinePrefix = "kline_"
)

// MaxDataTypes bounds the distinct data types of one filter.
const MaxDataTypes = 32

// Sentinel errors. NewFilter and Index.Add wrap them with a precise message;
// check them with errors.Is.
var (
	// ErrInvalidFilter reports a filter a client should not have sent: an
	// empty or over-long value.
	ErrInvalidFilter = errors.New("subscription: invalid filter")
	// ErrLimitExceeded reports a filter (or a filter count) over Limits.
	ErrLimitExceeded = errors.New("subscription: limit exceeded")
	// ErrInvalidLimits reports Limits with a field that is not positive:
	// the caller's mistake, not the client's.
	ErrInvalidLimits = errors.New("subscription: invalid limits")
)

// Limits bound what one connection may ask of the index, so that one client
// cannot inflate it: a filter expands into exchanges × data types × symbols
// index keys. Every field must be positive; the package applies no defaults
// (config.Config.SubscriptionLimits gives the configured ones).
type Limits struct {
	// MaxFilters is the number of filters one subscriber may hold (Index.Add).
	MaxFilters int
	// MaxSymbols is the number of distinct symbols in one filter.
	MaxSymbols int
	// MaxExchanges is the number of distinct exchanges in one filter.
	MaxExchanges int
	// MaxValueLen is the length in bytes of any one exchange, symbol or data
	// type, before and after normalisation.
	MaxValueLen int
}

// Validate fails with ErrInvalidLimits, naming the field, when a field of l
// is not positive.
func (l Limits) Validate() error {
	switch {
	case l.MaxFilters <= 0:
		return fmt.Errorf("%w: MaxFilters %d", ErrInvalidLimits, l.MaxFilters)
	case l.MaxSymbols <= 0:
		return fmt.Errorf("%w: MaxSymbols %d", ErrInvalidLimits, l.MaxSymbols)
	case l.MaxExchanges <= 0:
		return fmt.Errorf("%w: MaxExchanges %d", ErrInvalidLimits, l.MaxExchanges)
	case l.MaxValueLen <= 0:
		return fmt.Errorf("%w: MaxValueLen %d", ErrInvalidLimits, l.MaxValueLen)
	}
	return nil
}

// Filter is a validated, normalised client filter. An empty (or nil) field
// matches every value of that field. Build filters with NewFilter: Index and
// Matches rely on its normalisation. A Filter is a value; its slices must not
// be modified once it has been handed to an Index.
type Filter struct {
	Exchanges []string // lower-case
	Symbols   []string // normalised by NormalizeSymbol
	DataTypes []string // lower-case
}

// NewFilter validates and normalises a client filter. Exchanges and data
// types are lower-cased, symbols normalised with NormalizeSymbol and
// duplicates dropped, keeping the first occurrence's order. Any data type is
// accepted. Empty values and values longer than lim.MaxValueLen fail with
// ErrInvalidFilter; more than lim.MaxSymbols distinct symbols,
// lim.MaxExchanges distinct exchanges or MaxDataTypes distinct data types
// fail with ErrLimitExceeded; lim failing Validate fails with
// ErrInvalidLimits. The returned slices are never nil and never alias the
// arguments.
func NewFilter(exchanges, symbols, dataTypes []string, lim Limits) (Filter, error) {
	if err := lim.Validate(); err != nil {
		return Filter{}, err
	}
	var f Filter
	var err error
	if f.Exchanges, err = normaliseList("exchange", exchanges, lim.MaxExchanges, lim.MaxValueLen, strings.ToLower, nil); err != nil {
		return Filter{}, err
	}
	if f.Symbols, err = normaliseList("symbol", symbols, lim.MaxSymbols, lim.MaxValueLen, NormalizeSymbol, nil); err != nil {
		return Filter{}, err
	}
	if f.DataTypes, err = normaliseList("data type", dataTypes, MaxDataTypes, lim.MaxValueLen, strings.ToLower, nil); err != nil {
		return Filter{}, err
	}
	return f, nil
}

// normaliseList applies norm to every value of in, rejects empty and
// over-long values, drops duplicates and allows at most limit distinct
// values.
func normaliseList(field string, in []string, limit, maxLen int, norm func(string) string, check func(string) error) ([]string, error) {
	out := make([]string, 0, min(len(in), limit))
	var seen map[string]struct{} // only for long lists
	for _, v := range in {
		if v == "" {
			return nil, fmt.Errorf("%w: empty %s", ErrInvalidFilter, field)
		}
		if len(v) > maxLen {
			return nil, fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidFilter, field, maxLen)
		}
		n := norm(v)
		if n == "" {
			return nil, fmt.Errorf("%w: %s %q is empty once normalised", ErrInvalidFilter, field, v)
		}
		if len(n) > maxLen {
			return nil, fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidFilter, field, maxLen)
		}
		if check != nil {
			if err := check(n); err != nil {
				return nil, err
			}
		}
		if seen != nil {
			if _, dup := seen[n]; dup {
				continue
			}
		} else if slices.Contains(out, n) {
			continue
		}
		if len(out) == limit {
			return nil, fmt.Errorf("%w: more than %d %ss in one filter", ErrLimitExceeded, limit, field)
		}
		out = append(out, n)
		if seen == nil && len(out) > 16 {
			seen = make(map[string]struct{}, limit)
			for _, s := range out {
				seen[s] = struct{}{}
			}
		} else if seen != nil {
			seen[n] = struct{}{}
		}
	}
	return out, nil
}

// Matches reports whether f matches a message. exchange must be lower-case,
// dataType lower-case and symbol normalised by NormalizeSymbol, as the Index
// requires too. It is the reference the Index is tested against.
func (f Filter) Matches(exchange, dataType, symbol string) bool {
	return matchField(f.Exchanges, exchange) && f.matchesType(dataType) && matchField(f.Symbols, symbol)
}

func matchField(values []string, v string) bool {
	return len(values) == 0 || slices.Contains(values, v)
}

func (f Filter) matchesType(t string) bool {
	if len(f.DataTypes) == 0 {
		return true
	}
	for _, ft := range f.DataTypes {
		if ft == t || (ft == KlineAlias && isKline(t)) {
			return true
		}
	}
	return false
}

// IndexKeys returns the number of index keys f expands to when added:
// exchanges × data types × symbols, an empty field counting as one and
// KlineAlias as every kline_* type. Add's time and the index's memory grow
// with it (a few hundred bytes per key), so a caller that wants a tighter
// bound than Limits gives can check it before adding.
func (f Filter) IndexKeys() int {
	return max(len(f.Exchanges), 1) * max(len(f.expandTypes()), 1) * max(len(f.Symbols), 1)
}

// isKline reports whether t is one of the kline_* types of DataTypes, the set
// KlineAlias stands for.
func isKline(t string) bool {
	return strings.HasPrefix(t, klinePrefix) && slices.Contains(DataTypes, t)
}

// expandTypes returns f's data types with KlineAlias standing for itself and
// the kline_* types of DataTypes, without duplicates.
func (f Filter) expandTypes() []string {
	out := make([]string, 0, len(f.DataTypes)+4)
	add := func(t string) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, t := range f.DataTypes {
		add(t)
		if t != KlineAlias {
			continue
		}
		for _, k := range DataTypes {
			if strings.HasPrefix(k, klinePrefix) {
				add(k)
			}
		}
	}
	return out
}

func (f Filter) clone() Filter {
	return Filter{Exchanges: slices.Clone(f.Exchanges), Symbols: slices.Clone(f.Symbols), DataTypes: slices.Clone(f.DataTypes)}
}

// NormalizeSymbol returns s upper-cased with every '/', '-' and '_' removed,
// so that "btc/usdt", "BTC-USDT" and "BTCUSDT" compare equal. It returns s
// itself, without allocating, when s is already normal. Non-ASCII letters are
// upper-cased by Unicode simple case mapping; invalid UTF-8 becomes U+FFFD.
func NormalizeSymbol(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return normalizeUnicode(s)
		}
		if ('a' <= c && c <= 'z') || isSeparator(c) {
			return normalizeASCII(s, i)
		}
	}
	return s
}

func isSeparator(c byte) bool { return c == '/' || c == '-' || c == '_' }

// normalizeASCII normalises s from byte i on, s[:i] being normal already. It
// falls back to normalizeUnicode at the first non-ASCII byte.
func normalizeASCII(s string, i int) string {
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			return normalizeUnicode(s)
		case isSeparator(c):
		case 'a' <= c && c <= 'z':
			b.WriteByte(c - ('a' - 'A'))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func normalizeUnicode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '-' || r == '_' {
			return -1
		}
		return unicode.ToUpper(r)
	}, s)
}

// validForIndex rejects filters the index cannot represent: an empty value
// would collide with the wildcard key. NewFilter never produces one.
func (f Filter) validForIndex() error {
	for _, l := range [...][]string{f.Exchanges, f.Symbols, f.DataTypes} {
		if slices.Contains(l, "") {
			return fmt.Errorf("%w: empty value", ErrInvalidFilter)
		}
	}
	return nil
}
