package subscription_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"wsproxy/internal/configtest"
	"wsproxy/subscription"
)

func TestNormalizeSymbol(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"already normal", "BTCUSDT", "BTCUSDT"},
		{"slash lower", "btc/usdt", "BTCUSDT"},
		{"dash", "btc-usdt", "BTCUSDT"},
		{"underscore mixed case", "Btc_UsDt", "BTCUSDT"},
		{"slash upper", "BTC/USDT", "BTCUSDT"},
		{"digits kept", "1000pepe/usdt", "1000PEPEUSDT"},
		{"other punctuation kept", "BTC.P:USDT", "BTC.P:USDT"},
		{"only separators", "/-_", ""},
		{"empty", "", ""},
		{"unicode upper-cased", "äbc/def", "ÄBCDEF"},
		{"unicode after ascii change", "btc-ä", "BTCÄ"},
		{"invalid utf8 replaced", "b\xffc", "B\uFFFDC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := subscription.NormalizeSymbol(tt.in); got != tt.want {
				t.Fatalf("NormalizeSymbol(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizeSymbolAllocs(t *testing.T) {
	for _, s := range []string{"BTCUSDT", "1000PEPEUSDT", "ÄBC", ""} {
		if n := testing.AllocsPerRun(100, func() { sinkString = subscription.NormalizeSymbol(s) }); n != 0 {
			t.Errorf("NormalizeSymbol(%q) allocates %v times, want 0", s, n)
		}
	}
}

var sinkString string

// Limits with a field that is not positive are the caller's mistake: the
// package applies no defaults (config does).
func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name string
		in   subscription.Limits
		ok   bool
	}{
		{"zero", subscription.Limits{}, false},
		{"negative", subscription.Limits{MaxFilters: -1, MaxSymbols: -5, MaxExchanges: 32, MaxValueLen: 64}, false},
		{"no value length", subscription.Limits{MaxFilters: 2, MaxSymbols: 3, MaxExchanges: 4}, false},
		{"explicit", subscription.Limits{MaxFilters: 2, MaxSymbols: 3, MaxExchanges: 4, MaxValueLen: 5}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, subscription.ErrInvalidLimits)) {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if _, ferr := subscription.NewFilter(nil, []string{"BTC"}, nil, tt.in); errors.Is(ferr, subscription.ErrInvalidLimits) == tt.ok {
				t.Fatalf("NewFilter = %v, want ok %v", ferr, tt.ok)
			}
		})
	}
}

func TestNewFilterNormalises(t *testing.T) {
	tests := []struct {
		name                       string
		exchanges, symbols, types  []string
		wantEx, wantSym, wantTypes []string
	}{
		{
			name:   "all empty",
			wantEx: []string{}, wantSym: []string{}, wantTypes: []string{},
		},
		{
			name:      "case and symbol forms",
			exchanges: []string{"Binance", "OKX"}, symbols: []string{"btc/usdt", "ETH-USDT", "sol_usdt"}, types: []string{"Trade", "KLINE_1M"},
			wantEx: []string{"binance", "okx"}, wantSym: []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, wantTypes: []string{"trade", "kline_1m"},
		},
		{
			name:      "duplicates after normalisation removed, first order kept",
			exchanges: []string{"okx", "OKX", "binance", "Okx"}, symbols: []string{"BTC/USDT", "btcusdt", "btc-usdt", "ETHUSDT"}, types: []string{"ticker", "TICKER", "trade"},
			wantEx: []string{"okx", "binance"}, wantSym: []string{"BTCUSDT", "ETHUSDT"}, wantTypes: []string{"ticker", "trade"},
		},
		{
			name:   "kline alias kept as sent",
			types:  []string{"Kline", "kline_1h"},
			wantEx: []string{}, wantSym: []string{}, wantTypes: []string{"kline", "kline_1h"},
		},
		{
			name:    "duplicates do not count against the limit",
			symbols: slices.Repeat([]string{"BTCUSDT", "btc/usdt"}, 200),
			wantEx:  []string{}, wantSym: []string{"BTCUSDT"}, wantTypes: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := subscription.NewFilter(tt.exchanges, tt.symbols, tt.types, configtest.Limits(subscription.Limits{}))
			if err != nil {
				t.Fatalf("NewFilter: %v", err)
			}
			check := func(field string, got, want []string) {
				t.Helper()
				if got == nil || !slices.Equal(got, want) {
					t.Errorf("%s = %#v, want %#v", field, got, want)
				}
			}
			check("Exchanges", f.Exchanges, tt.wantEx)
			check("Symbols", f.Symbols, tt.wantSym)
			check("DataTypes", f.DataTypes, tt.wantTypes)
		})
	}
}

func TestNewFilterDoesNotAlias(t *testing.T) {
	ex := []string{"binance"}
	f, err := subscription.NewFilter(ex, nil, nil, configtest.Limits(subscription.Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	ex[0] = "okx"
	if f.Exchanges[0] != "binance" {
		t.Fatalf("filter aliases its argument: %v", f.Exchanges)
	}
}

func TestNewFilterErrors(t *testing.T) {
	long := strings.Repeat("a", 65)
	many := func(n int, prefix string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return out
	}
	tests := []struct {
		name                      string
		exchanges, symbols, types []string
		lim                       subscription.Limits
		want                      error
		wantMsg                   string
	}{
		{name: "too many data types", types: manyTypes(subscription.MaxDataTypes + 1), want: subscription.ErrLimitExceeded, wantMsg: "data types in one filter"},
		{name: "empty exchange", exchanges: []string{"binance", ""}, want: subscription.ErrInvalidFilter, wantMsg: "empty exchange"},
		{name: "empty symbol", symbols: []string{""}, want: subscription.ErrInvalidFilter, wantMsg: "empty symbol"},
		{name: "symbol empty once normalised", symbols: []string{"/"}, want: subscription.ErrInvalidFilter, wantMsg: "empty once normalised"},
		{name: "empty data type", types: []string{""}, want: subscription.ErrInvalidFilter, wantMsg: "empty data type"},
		{name: "exchange too long", exchanges: []string{long}, want: subscription.ErrInvalidFilter, wantMsg: "exchange longer than 64 bytes"},
		{name: "symbol too long", symbols: []string{long}, want: subscription.ErrInvalidFilter, wantMsg: "symbol longer than 64 bytes"},
		{name: "data type too long", types: []string{long}, want: subscription.ErrInvalidFilter, wantMsg: "data type longer than 64 bytes"},
		{name: "custom value length", symbols: []string{"BTCUSDT"}, lim: subscription.Limits{MaxValueLen: 4}, want: subscription.ErrInvalidFilter, wantMsg: "longer than 4 bytes"},
		{name: "too many symbols", symbols: many(101, "S"), want: subscription.ErrLimitExceeded, wantMsg: "more than 100 symbols"},
		{name: "custom symbol limit", symbols: many(3, "S"), lim: subscription.Limits{MaxSymbols: 2}, want: subscription.ErrLimitExceeded, wantMsg: "more than 2 symbols"},
		{name: "too many exchanges", exchanges: many(33, "ex"), want: subscription.ErrLimitExceeded, wantMsg: "more than 32 exchanges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// lim's zero fields stand for the configuration's limits.
			f, err := subscription.NewFilter(tt.exchanges, tt.symbols, tt.types, configtest.Limits(tt.lim))
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewFilter() = %+v, %v; want %v", f, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			other := subscription.ErrLimitExceeded
			if tt.want == other {
				other = subscription.ErrInvalidFilter
			}
			if errors.Is(err, other) {
				t.Errorf("error %q also matches %v", err, other)
			}
		})
	}
}

func TestFilterMatches(t *testing.T) {
	mustFilter := func(ex, sym, types []string) subscription.Filter {
		t.Helper()
		f, err := subscription.NewFilter(ex, sym, types, configtest.Limits(subscription.Limits{}))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	type msg struct{ exchange, dataType, symbol string }
	tests := []struct {
		name   string
		filter subscription.Filter
		yes    []msg
		no     []msg
	}{
		{
			name:   "empty matches everything",
			filter: mustFilter(nil, nil, nil),
			yes:    []msg{{"binance", "trade", "BTCUSDT"}, {"okx", "kline_1d", "ETHUSDT"}, {"x", "unknown", "Y"}},
		},
		{
			name:   "zero value matches everything",
			filter: subscription.Filter{},
			yes:    []msg{{"binance", "trade", "BTCUSDT"}},
		},
		{
			name:   "AND across fields",
			filter: mustFilter([]string{"binance"}, []string{"BTCUSDT"}, []string{"trade"}),
			yes:    []msg{{"binance", "trade", "BTCUSDT"}},
			no:     []msg{{"okx", "trade", "BTCUSDT"}, {"binance", "ticker", "BTCUSDT"}, {"binance", "trade", "ETHUSDT"}},
		},
		{
			name:   "OR within a field",
			filter: mustFilter([]string{"binance", "okx"}, []string{"BTCUSDT", "ETHUSDT"}, nil),
			yes:    []msg{{"binance", "trade", "BTCUSDT"}, {"okx", "depth", "ETHUSDT"}, {"okx", "kline_1m", "BTCUSDT"}},
			no:     []msg{{"bybit", "trade", "BTCUSDT"}, {"okx", "trade", "SOLUSDT"}},
		},
		{
			name:   "kline matches the literal kline and every kline type only",
			filter: mustFilter(nil, nil, []string{"kline"}),
			yes:    []msg{{"binance", "kline", "BTCUSDT"}, {"binance", "kline_1m", "BTCUSDT"}, {"binance", "kline_5m", "X"}, {"okx", "kline_1h", "Y"}, {"okx", "kline_1d", "Z"}},
			no:     []msg{{"binance", "trade", "BTCUSDT"}, {"binance", "kline_15m", "BTCUSDT"}, {"binance", "ticker", "BTCUSDT"}},
		},
		{
			name:   "a type the proxy has not heard of matches exactly",
			filter: mustFilter(nil, nil, []string{"bookTicker"}),
			yes:    []msg{{"binance", "bookticker", "BTCUSDT"}},
			no:     []msg{{"binance", "ticker", "BTCUSDT"}, {"binance", "trade", "BTCUSDT"}},
		},
		{
			name:   "specific kline interval",
			filter: mustFilter(nil, nil, []string{"kline_1m"}),
			yes:    []msg{{"binance", "kline_1m", "BTCUSDT"}},
			no:     []msg{{"binance", "kline_5m", "BTCUSDT"}},
		},
		{
			name:   "symbol forms are one symbol",
			filter: mustFilter(nil, []string{"BTC/USDT", "eth-usdt", "sol_usdt"}, nil),
			yes: []msg{
				{"binance", "trade", subscription.NormalizeSymbol("btc-usdt")},
				{"binance", "trade", subscription.NormalizeSymbol("BTCUSDT")},
				{"binance", "trade", subscription.NormalizeSymbol("ETH/USDT")},
				{"binance", "trade", subscription.NormalizeSymbol("SOLUSDT")},
			},
			no: []msg{{"binance", "trade", "BTCUSD"}},
		},
		{
			name:   "exchange case normalised in the filter",
			filter: mustFilter([]string{"BiNaNcE"}, nil, nil),
			yes:    []msg{{"binance", "trade", "BTCUSDT"}},
			no:     []msg{{"Binance", "trade", "BTCUSDT"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range tt.yes {
				if !tt.filter.Matches(m.exchange, m.dataType, m.symbol) {
					t.Errorf("%+v does not match %+v, want match", tt.filter, m)
				}
			}
			for _, m := range tt.no {
				if tt.filter.Matches(m.exchange, m.dataType, m.symbol) {
					t.Errorf("%+v matches %+v, want no match", tt.filter, m)
				}
			}
		})
	}
}

func FuzzNewFilter(f *testing.F) {
	f.Add("binance", "btc/usdt", "trade", 0)
	f.Add("OKX", "ETH-USDT", "kline", 2)
	f.Add("", "/", "foo", 1)
	f.Add("ÄÖ\xff", "äb\xff-_", "KLINE_1M", 3)
	f.Add("a,b,a", "x,X,y", "ticker,TICKER,kline", 4)
	f.Fuzz(func(t *testing.T, ex, sym, types string, maxLen int) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		// A value length that is not positive stands for the default.
		lim := configtest.Limits(subscription.Limits{MaxValueLen: max(maxLen%80, 0), MaxSymbols: 5, MaxExchanges: 3})
		fl, err := subscription.NewFilter(split(ex), split(sym), split(types), lim)
		if err != nil {
			if !errors.Is(err, subscription.ErrInvalidFilter) && !errors.Is(err, subscription.ErrLimitExceeded) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		checkField := func(name string, vals []string, max int, norm func(string) string) {
			if len(vals) > max {
				t.Fatalf("%s: %d values over limit %d", name, len(vals), max)
			}
			for i, v := range vals {
				if v == "" || len(v) > lim.MaxValueLen || !utf8.ValidString(v) {
					t.Fatalf("%s: bad value %q", name, v)
				}
				if norm(v) != v {
					t.Fatalf("%s: %q not normal (%q)", name, v, norm(v))
				}
				if slices.Contains(vals[:i], v) {
					t.Fatalf("%s: duplicate %q", name, v)
				}
			}
		}
		checkField("exchanges", fl.Exchanges, lim.MaxExchanges, strings.ToLower)
		checkField("symbols", fl.Symbols, lim.MaxSymbols, subscription.NormalizeSymbol)
		checkField("data types", fl.DataTypes, subscription.MaxDataTypes, strings.ToLower)
		// Normalisation is idempotent: feeding the result back changes nothing.
		again, err := subscription.NewFilter(fl.Exchanges, fl.Symbols, fl.DataTypes, lim)
		if err != nil {
			t.Fatalf("normalised filter rejected: %v", err)
		}
		if !slices.Equal(again.Exchanges, fl.Exchanges) || !slices.Equal(again.Symbols, fl.Symbols) || !slices.Equal(again.DataTypes, fl.DataTypes) {
			t.Fatalf("not idempotent: %+v then %+v", fl, again)
		}
		// A filter matches the messages it names.
		for _, e := range fl.Exchanges {
			for _, s := range fl.Symbols {
				if !fl.Matches(e, "kline_1m", s) && (len(fl.DataTypes) == 0 || slices.Contains(fl.DataTypes, "kline")) {
					t.Fatalf("%+v does not match (%q, kline_1m, %q)", fl, e, s)
				}
			}
		}
		// The index accepts it.
		ix := subscription.NewIndex[int]()
		if _, err := ix.Add(1, fl, lim); err != nil {
			t.Fatalf("Add: %v", err)
		}
	})
}

func TestFilterIndexKeys(t *testing.T) {
	tests := []struct {
		name           string
		ex, sym, types []string
		want           int
	}{
		{"match all", nil, nil, nil, 1},
		{"one of each", []string{"binance"}, []string{"BTCUSDT"}, []string{"trade"}, 1},
		{"product", []string{"binance", "okx"}, []string{"A", "B", "C"}, []string{"trade", "ticker"}, 12},
		{"kline is five", nil, []string{"A"}, []string{"kline"}, 5},
		{"kline overlaps kline_1m", nil, nil, []string{"kline", "kline_1m", "trade"}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := subscription.NewFilter(tt.ex, tt.sym, tt.types, configtest.Limits(subscription.Limits{}))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.IndexKeys(); got != tt.want {
				t.Fatalf("IndexKeys() = %d, want %d", got, tt.want)
			}
		})
	}
}

func manyTypes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("type_%d", i)
	}
	return out
}
