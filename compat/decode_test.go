package compat_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"wsproxy/compat"
)

func TestDecodeClientValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want compat.ClientMessage
	}{
		{
			name: "ping",
			in:   `{"type":"ping"}`,
			want: compat.ClientMessage{Kind: compat.KindPing, Type: "ping"},
		},
		{
			name: "ping with ISO timestamp",
			in:   `{"type":"ping","timestamp":"2024-08-09T08:00:00.000Z"}`,
			want: compat.ClientMessage{Kind: compat.KindPing, Type: "ping"},
		},
		{
			name: "ping with numeric timestamp and whitespace",
			in:   " \n{ \"timestamp\" : 1723190400000 , \"type\" : \"ping\" }\n",
			want: compat.ClientMessage{Kind: compat.KindPing, Type: "ping"},
		},
		{
			name: "ping payload ignored",
			in:   `{"type":"ping","payload":"anything"}`,
			want: compat.ClientMessage{Kind: compat.KindPing, Type: "ping"},
		},
		{
			name: "subscribe filter form",
			in:   `{"type":"subscribe","payload":{"exchange":["binance","OKX"],"symbols":["BTC/USDT","eth-usdt"],"dataTypes":["trade","kline"]}}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe", Filter: compat.FilterSpec{
				Exchange:  []string{"binance", "OKX"},
				Symbols:   []string{"BTC/USDT", "eth-usdt"},
				DataTypes: []string{"trade", "kline"},
			}},
		},
		{
			name: "subscribe partial filter keeps absent fields nil and empty arrays empty",
			in:   `{"type":"subscribe","payload":{"symbols":[],"dataTypes":null}}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe", Filter: compat.FilterSpec{
				Symbols: []string{},
			}},
		},
		{
			name: "subscribe filter values not normalised",
			in:   `{"type":"subscribe","payload":{"symbols":["btc_usdt","\u00e9"]}}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe", Filter: compat.FilterSpec{
				Symbols: []string{"btc_usdt", "é"},
			}},
		},
		{
			name: "subscribe channel form",
			in:   `{"type":"subscribe","payload":{"channel":"marketData"}}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe", Channel: compat.ChannelMarketData},
		},
		{
			name: "subscribe channel connectionStatus",
			in:   `{"type":"subscribe","payload":{"channel":"connectionStatus"}}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe", Channel: compat.ChannelConnectionStatus},
		},
		{
			name: "subscribe channel wins over filter fields",
			in:   `{"type":"subscribe","payload":{"channel":"metrics","symbols":5}}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe", Channel: compat.ChannelMetrics},
		},
		{
			name: "subscribe without payload",
			in:   `{"type":"subscribe"}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe"},
		},
		{
			name: "subscribe null payload",
			in:   `{"type":"subscribe","payload":null}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe"},
		},
		{
			name: "subscribe empty payload",
			in:   `{"type":"subscribe","payload":{}}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe"},
		},
		{
			name: "unsubscribe string filterId",
			in:   `{"type":"unsubscribe","payload":{"filterId":"f-12"}}`,
			want: compat.ClientMessage{Kind: compat.KindUnsubscribe, Type: "unsubscribe", FilterID: "f-12"},
		},
		{
			name: "unsubscribe numeric filterId",
			in:   `{"type":"unsubscribe","payload":{"filterId":12}}`,
			want: compat.ClientMessage{Kind: compat.KindUnsubscribe, Type: "unsubscribe", FilterID: "12"},
		},
		{
			name: "unsubscribe integral float filterId",
			in:   `{"type":"unsubscribe","payload":{"filterId":1.2e1}}`,
			want: compat.ClientMessage{Kind: compat.KindUnsubscribe, Type: "unsubscribe", FilterID: "12"},
		},
		{
			name: "unsubscribe fractional filterId kept as sent",
			in:   `{"type":"unsubscribe","payload":{"filterId":1.5}}`,
			want: compat.ClientMessage{Kind: compat.KindUnsubscribe, Type: "unsubscribe", FilterID: "1.5"},
		},
		{
			name: "unsubscribe without filterId",
			in:   `{"type":"unsubscribe","payload":{}}`,
			want: compat.ClientMessage{Kind: compat.KindUnsubscribe, Type: "unsubscribe"},
		},
		{
			name: "unsubscribe without payload",
			in:   `{"type":"unsubscribe"}`,
			want: compat.ClientMessage{Kind: compat.KindUnsubscribe, Type: "unsubscribe"},
		},
		{
			name: "unsubscribe null filterId",
			in:   `{"type":"unsubscribe","payload":{"filterId":null}}`,
			want: compat.ClientMessage{Kind: compat.KindUnsubscribe, Type: "unsubscribe"},
		},
		{
			name: "unsubscribe channel form",
			in:   `{"type":"unsubscribe","payload":{"channel":"marketData"}}`,
			want: compat.ClientMessage{Kind: compat.KindUnsubscribe, Type: "unsubscribe", Channel: compat.ChannelMarketData},
		},
		{
			name: "getStats",
			in:   `{"type":"getStats","timestamp":"2024-08-09T08:00:00Z"}`,
			want: compat.ClientMessage{Kind: compat.KindGetStats, Type: "getStats"},
		},
		{
			name: "extra fields ignored",
			in:   `{"type":"subscribe","id":7,"meta":{"a":[1,2]},"payload":{"symbols":["BTC/USDT"],"extra":true,"Channel":"x"}}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe", Filter: compat.FilterSpec{
				Symbols: []string{"BTC/USDT"},
			}},
		},
		{
			name: "duplicate type key last wins",
			in:   `{"type":"bogus","type":"ping"}`,
			want: compat.ClientMessage{Kind: compat.KindPing, Type: "ping"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := compat.DecodeClient([]byte(tc.in))
			if err != nil {
				t.Fatalf("DecodeClient(%s): unexpected error %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("DecodeClient(%s)\n got: %#v\nwant: %#v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodeClientErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantCode string
	}{
		{"empty", ``, compat.CodeInvalidMessage},
		{"whitespace", "  \n", compat.CodeInvalidMessage},
		{"not JSON", `hello`, compat.CodeInvalidMessage},
		{"truncated JSON", `{"type":"ping"`, compat.CodeInvalidMessage},
		{"trailing garbage", `{"type":"ping"}x`, compat.CodeInvalidMessage},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, compat.CodeInvalidMessage},
		{"array", `[{"type":"ping"}]`, compat.CodeInvalidMessage},
		{"string", `"ping"`, compat.CodeInvalidMessage},
		{"number", `42`, compat.CodeInvalidMessage},
		{"null", `null`, compat.CodeInvalidMessage},
		{"missing type", `{"payload":{}}`, compat.CodeInvalidMessage},
		{"null type", `{"type":null}`, compat.CodeInvalidMessage},
		{"numeric type", `{"type":1}`, compat.CodeInvalidMessage},
		{"object type", `{"type":{"name":"ping"}}`, compat.CodeInvalidMessage},
		{"type key is case-sensitive", `{"Type":"ping"}`, compat.CodeInvalidMessage},
		{"unknown type", `{"type":"publish"}`, compat.CodeUnknownMessageType},
		{"empty type", `{"type":""}`, compat.CodeUnknownMessageType},
		{"type value is case-sensitive", `{"type":"PING"}`, compat.CodeUnknownMessageType},
		{"payload string", `{"type":"subscribe","payload":"marketData"}`, compat.CodeInvalidFilter},
		{"payload array", `{"type":"subscribe","payload":[]}`, compat.CodeInvalidFilter},
		{"unsubscribe payload number", `{"type":"unsubscribe","payload":3}`, compat.CodeInvalidFilter},
		{"exchange single string", `{"type":"subscribe","payload":{"exchange":"binance"}}`, compat.CodeInvalidFilter},
		{"symbols single string", `{"type":"subscribe","payload":{"symbols":"BTC/USDT"}}`, compat.CodeInvalidFilter},
		{"dataTypes single string", `{"type":"subscribe","payload":{"dataTypes":"trade"}}`, compat.CodeInvalidFilter},
		{"symbols numbers", `{"type":"subscribe","payload":{"symbols":[1,2]}}`, compat.CodeInvalidFilter},
		{"symbols null element", `{"type":"subscribe","payload":{"symbols":["BTC/USDT",null]}}`, compat.CodeInvalidFilter},
		{"symbols nested array", `{"type":"subscribe","payload":{"symbols":[["BTC/USDT"]]}}`, compat.CodeInvalidFilter},
		{"exchange object", `{"type":"subscribe","payload":{"exchange":{"0":"binance"}}}`, compat.CodeInvalidFilter},
		{"dataTypes bool", `{"type":"subscribe","payload":{"dataTypes":true}}`, compat.CodeInvalidFilter},
		{"unknown channel", `{"type":"subscribe","payload":{"channel":"trades"}}`, compat.CodeInvalidFilter},
		{"channel wrong case", `{"type":"subscribe","payload":{"channel":"MarketData"}}`, compat.CodeInvalidFilter},
		{"channel number", `{"type":"subscribe","payload":{"channel":1}}`, compat.CodeInvalidFilter},
		{"channel empty", `{"type":"unsubscribe","payload":{"channel":""}}`, compat.CodeInvalidFilter},
		{"unsubscribe unknown channel", `{"type":"unsubscribe","payload":{"channel":"orders"}}`, compat.CodeInvalidFilter},
		{"filterId bool", `{"type":"unsubscribe","payload":{"filterId":true}}`, compat.CodeInvalidFilter},
		{"filterId array", `{"type":"unsubscribe","payload":{"filterId":["1"]}}`, compat.CodeInvalidFilter},
		{"filterId object", `{"type":"unsubscribe","payload":{"filterId":{}}}`, compat.CodeInvalidFilter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := compat.DecodeClient([]byte(tc.in))
			if err == nil {
				t.Fatalf("DecodeClient(%q) = %#v, want error %s", tc.in, got, tc.wantCode)
			}
			if err.Code != tc.wantCode {
				t.Fatalf("DecodeClient(%q): code %s (%s), want %s", tc.in, err.Code, err.Message, tc.wantCode)
			}
			if err.Message == "" {
				t.Fatal("error without message")
			}
			if !reflect.DeepEqual(got, compat.ClientMessage{}) {
				t.Fatalf("DecodeClient returned a message alongside the error: %#v", got)
			}
		})
	}
}

func TestDecodeClientUnknownTypeEcho(t *testing.T) {
	tests := []struct {
		name       string
		typ        string
		wantEcho   string
		wantAbsent string
	}{
		{"short type quoted", "publish", `"publish"`, ""},
		{"long type cut to 64 bytes", strings.Repeat("a", 64) + "TAIL", `"` + strings.Repeat("a", 64) + `"`, "TAIL"},
		{"cut on rune boundary", strings.Repeat("a", 63) + "éTAIL", `"` + strings.Repeat("a", 63) + `"`, "é"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(`{"type":` + string(compat.AppendJSONString(nil, tc.typ)) + `}`)
			_, err := compat.DecodeClient(in)
			if err == nil || err.Code != compat.CodeUnknownMessageType {
				t.Fatalf("want %s, got %v", compat.CodeUnknownMessageType, err)
			}
			if !strings.Contains(err.Message, tc.wantEcho) {
				t.Fatalf("message %q does not contain %q", err.Message, tc.wantEcho)
			}
			if tc.wantAbsent != "" && strings.Contains(err.Message, tc.wantAbsent) {
				t.Fatalf("message %q contains %q beyond the 64-byte cut", err.Message, tc.wantAbsent)
			}
		})
	}
}

func TestErrorInterface(t *testing.T) {
	_, perr := compat.DecodeClient([]byte(`{"type":"nope"}`))
	var err error = perr
	var target *compat.Error
	if !errors.As(err, &target) || target.Code != compat.CodeUnknownMessageType {
		t.Fatalf("errors.As: got %v", err)
	}
	if got := err.Error(); !strings.HasPrefix(got, "compat: UNKNOWN_MESSAGE_TYPE: ") {
		t.Fatalf("Error() = %q", got)
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		kind compat.Kind
		want string
	}{
		{compat.KindPing, "ping"},
		{compat.KindSubscribe, "subscribe"},
		{compat.KindUnsubscribe, "unsubscribe"},
		{compat.KindGetStats, "getStats"},
		{0, "Kind(0)"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.kind.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDecodeClientKindMatchesType checks that every decoded kind names itself
// the way the client spelled the type, so replies can echo Kind.String().
func TestDecodeClientKindMatchesType(t *testing.T) {
	for _, typ := range []string{"ping", "subscribe", "unsubscribe", "getStats"} {
		t.Run(typ, func(t *testing.T) {
			msg, err := compat.DecodeClient([]byte(`{"type":"` + typ + `"}`))
			if err != nil {
				t.Fatal(err)
			}
			if msg.Kind.String() != typ || msg.Type != typ {
				t.Fatalf("kind %v, type %q", msg.Kind, msg.Type)
			}
		})
	}
}

func BenchmarkDecodeClient(b *testing.B) {
	in := []byte(`{"type":"subscribe","payload":{"exchange":["binance"],"symbols":["BTC/USDT","ETH/USDT"],"dataTypes":["trade"]},"timestamp":"2024-08-09T08:00:00.000Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := compat.DecodeClient(in); err != nil {
			b.Fatal(err)
		}
	}
}
