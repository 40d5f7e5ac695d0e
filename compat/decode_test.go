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
			name: "any channel string, as the legacy server accepted",
			in:   `{"type":"subscribe","payload":{"channel":"trades"}}`,
			want: compat.ClientMessage{Kind: compat.KindSubscribe, Type: "subscribe", Channel: "trades"},
		},
		{
			name: "channel names are not case-folded",
			in:   `{"type":"unsubscribe","payload":{"channel":"MarketData"}}`,
			want: compat.ClientMessage{Kind: compat.KindUnsubscribe, Type: "unsubscribe", Channel: "MarketData"},
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

// TestDecodeClientErrors checks the answers of the recorded legacy servers
// (transcripts, scenario 7): only frames that are not JSON, or JSON null,
// get A's "Invalid message format" error; other unusable frames are silent;
// malformed filter fields get the INVALID_FILTER extension.
func TestDecodeClientErrors(t *testing.T) {
	const answered, silent = false, true
	tests := []struct {
		name     string
		in       string
		wantCode string
		silent   bool
	}{
		{"empty", ``, compat.CodeInvalidMessage, answered},
		{"whitespace", "  \n", compat.CodeInvalidMessage, answered},
		{"not JSON", `hello`, compat.CodeInvalidMessage, answered},
		{"truncated JSON", `{"type":"ping"`, compat.CodeInvalidMessage, answered},
		{"trailing garbage", `{"type":"ping"}x`, compat.CodeInvalidMessage, answered},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, compat.CodeInvalidMessage, answered},
		{"null", `null`, compat.CodeInvalidMessage, answered},
		{"array", `[{"type":"ping"}]`, compat.CodeInvalidMessage, silent},
		{"empty array", `[]`, compat.CodeInvalidMessage, silent},
		{"string", `"ping"`, compat.CodeInvalidMessage, silent},
		{"number", `42`, compat.CodeInvalidMessage, silent},
		{"empty object", `{}`, compat.CodeInvalidMessage, silent},
		{"missing type", `{"payload":{}}`, compat.CodeInvalidMessage, silent},
		{"null type", `{"type":null}`, compat.CodeInvalidMessage, silent},
		{"numeric type", `{"type":1}`, compat.CodeInvalidMessage, silent},
		{"object type", `{"type":{"name":"ping"}}`, compat.CodeInvalidMessage, silent},
		{"type key is case-sensitive", `{"Type":"ping"}`, compat.CodeInvalidMessage, silent},
		{"unknown type", `{"type":"unknown"}`, compat.CodeUnknownMessageType, silent},
		{"empty type", `{"type":""}`, compat.CodeUnknownMessageType, silent},
		{"type value is case-sensitive", `{"type":"Ping"}`, compat.CodeUnknownMessageType, silent},
		{"subscribe without payload", `{"type":"subscribe"}`, compat.CodeInvalidFilter, silent},
		{"subscribe null payload", `{"type":"subscribe","payload":null}`, compat.CodeInvalidFilter, silent},
		{"payload string", `{"type":"subscribe","payload":"x"}`, compat.CodeInvalidFilter, silent},
		{"payload array", `{"type":"subscribe","payload":[]}`, compat.CodeInvalidFilter, silent},
		{"unsubscribe payload number", `{"type":"unsubscribe","payload":3}`, compat.CodeInvalidFilter, silent},
		{"channel number", `{"type":"subscribe","payload":{"channel":1}}`, compat.CodeInvalidFilter, silent},
		{"channel empty", `{"type":"unsubscribe","payload":{"channel":""}}`, compat.CodeInvalidFilter, silent},
		{"exchange single string", `{"type":"subscribe","payload":{"exchange":"binance"}}`, compat.CodeInvalidFilter, answered},
		{"symbols single string", `{"type":"subscribe","payload":{"symbols":"BTC/USDT"}}`, compat.CodeInvalidFilter, answered},
		{"dataTypes single string", `{"type":"subscribe","payload":{"dataTypes":"trade"}}`, compat.CodeInvalidFilter, answered},
		{"symbols numbers", `{"type":"subscribe","payload":{"symbols":[1,2]}}`, compat.CodeInvalidFilter, answered},
		{"symbols null element", `{"type":"subscribe","payload":{"symbols":["BTC/USDT",null]}}`, compat.CodeInvalidFilter, answered},
		{"symbols nested array", `{"type":"subscribe","payload":{"symbols":[["BTC/USDT"]]}}`, compat.CodeInvalidFilter, answered},
		{"exchange object", `{"type":"subscribe","payload":{"exchange":{"0":"binance"}}}`, compat.CodeInvalidFilter, answered},
		{"dataTypes bool", `{"type":"subscribe","payload":{"dataTypes":true}}`, compat.CodeInvalidFilter, answered},
		{"filterId bool", `{"type":"unsubscribe","payload":{"filterId":true}}`, compat.CodeInvalidFilter, answered},
		{"filterId array", `{"type":"unsubscribe","payload":{"filterId":["1"]}}`, compat.CodeInvalidFilter, answered},
		{"filterId object", `{"type":"unsubscribe","payload":{"filterId":{}}}`, compat.CodeInvalidFilter, answered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := compat.DecodeClient([]byte(tc.in))
			if err == nil {
				t.Fatalf("DecodeClient(%q) = %#v, want error %s", tc.in, got, tc.wantCode)
			}
			if err.Code != tc.wantCode || err.Silent != tc.silent {
				t.Fatalf("DecodeClient(%q): code %s silent %v (%s), want %s silent %v", tc.in, err.Code, err.Silent, err.Message, tc.wantCode, tc.silent)
			}
			if err.Message == "" {
				t.Fatal("error without message")
			}
			if err.Code == compat.CodeInvalidMessage && !err.Silent && err.Message != compat.MessageInvalidFormat {
				t.Fatalf("message %q, want the legacy text %q", err.Message, compat.MessageInvalidFormat)
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
			msg, err := compat.DecodeClient([]byte(`{"type":"` + typ + `","payload":{}}`))
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
