package compat_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"wsproxy/compat"
	"wsproxy/dataflow"
)

const (
	ts      = int64(1723190400003)
	eventTS = int64(1723190400000)
)

func sampleTrade() *dataflow.MarketData {
	return &dataflow.MarketData{
		Exchange:   "binance",
		Symbol:     "BTC/USDT",
		Type:       "trade",
		Timestamp:  eventTS,
		ReceivedAt: eventTS + 1,
		Data:       json.RawMessage(`{"id":"123","price":"50000.1","quantity":"0.01","side":"buy","timestamp":1723190400000}`),
		Metadata:   json.RawMessage(`{"source":"ws"}`),
	}
}

// tradeWire is the data message of PROTOCOL.md, compacted.
const tradeWire = `{"type":"trade","payload":{"type":"trade","exchange":"binance","symbol":"BTC/USDT",` +
	`"data":{"id":"123","price":"50000.1","quantity":"0.01","side":"buy","timestamp":1723190400000},` +
	`"timestamp":1723190400000},"timestamp":1723190400003}`

var tradeMap = map[string]any{
	"type": "trade",
	"payload": map[string]any{
		"type": "trade", "exchange": "binance", "symbol": "BTC/USDT",
		"data": map[string]any{
			"id": "123", "price": "50000.1", "quantity": "0.01", "side": "buy",
			"timestamp": float64(eventTS),
		},
		"timestamp": float64(eventTS),
	},
	"timestamp": float64(ts),
}

type encoderCase struct {
	name    string
	enc     func(dst []byte) []byte
	want    string
	wantMap map[string]any
}

func encoderCases(t testing.TB) []encoderCase {
	t.Helper()
	stats := map[string]any{"connection": map[string]any{"activeConnections": 3}}
	return []encoderCase{
		{
			name: "welcome",
			enc:  func(d []byte) []byte { return compat.AppendWelcome(d, "c-42", 1723190400000, ts) },
			want: `{"type":"welcome","payload":{"connectionId":"c-42","serverTime":1723190400000,"proxyVersion":"1.0.0"},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type":      "welcome",
				"payload":   map[string]any{"connectionId": "c-42", "serverTime": float64(1723190400000), "proxyVersion": "1.0.0"},
				"timestamp": float64(ts),
			},
		},
		{
			name:    "pong",
			enc:     func(d []byte) []byte { return compat.AppendPong(d, ts) },
			want:    `{"type":"pong","timestamp":1723190400003}`,
			wantMap: map[string]any{"type": "pong", "timestamp": float64(ts)},
		},
		{
			name: "subscribed filter",
			enc: func(d []byte) []byte {
				f := compat.FilterSpec{
					Exchange:  []string{"binance", "OKX"},
					Symbols:   []string{"BTC/USDT"},
					DataTypes: []string{"trade", "kline"},
				}
				return compat.AppendSubscribedFilter(d, "7", f, ts)
			},
			want: `{"type":"subscribed","payload":{"filterId":"7","filter":{"exchange":["binance","OKX"],` +
				`"symbols":["BTC/USDT"],"dataTypes":["trade","kline"]}},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type": "subscribed",
				"payload": map[string]any{
					"filterId": "7",
					"filter": map[string]any{
						"exchange":  []any{"binance", "OKX"},
						"symbols":   []any{"BTC/USDT"},
						"dataTypes": []any{"trade", "kline"},
					},
				},
				"timestamp": float64(ts),
			},
		},
		{
			name: "subscribed filter echoes exactly: nil omitted, empty kept",
			enc: func(d []byte) []byte {
				return compat.AppendSubscribedFilter(d, "f1", compat.FilterSpec{Symbols: []string{}}, ts)
			},
			want: `{"type":"subscribed","payload":{"filterId":"f1","filter":{"symbols":[]}},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type": "subscribed",
				"payload": map[string]any{
					"filterId": "f1",
					"filter":   map[string]any{"symbols": []any{}},
				},
				"timestamp": float64(ts),
			},
		},
		{
			name: "subscribed filter escapes echoed values",
			enc: func(d []byte) []byte {
				return compat.AppendSubscribedFilter(d, `a"b`, compat.FilterSpec{Symbols: []string{"x\\y\n"}}, ts)
			},
			want: `{"type":"subscribed","payload":{"filterId":"a\"b","filter":{"symbols":["x\\y\n"]}},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type": "subscribed",
				"payload": map[string]any{
					"filterId": `a"b`,
					"filter":   map[string]any{"symbols": []any{"x\\y\n"}},
				},
				"timestamp": float64(ts),
			},
		},
		{
			name: "subscribed channel",
			enc:  func(d []byte) []byte { return compat.AppendSubscribedChannel(d, compat.ChannelMarketData, ts) },
			want: `{"type":"subscribed","payload":{"channel":"marketData"},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type": "subscribed", "payload": map[string]any{"channel": "marketData"}, "timestamp": float64(ts),
			},
		},
		{
			name: "unsubscribed filter",
			enc:  func(d []byte) []byte { return compat.AppendUnsubscribedFilter(d, "7", ts) },
			want: `{"type":"unsubscribed","payload":{"filterId":"7"},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type": "unsubscribed", "payload": map[string]any{"filterId": "7"}, "timestamp": float64(ts),
			},
		},
		{
			name: "unsubscribed all",
			enc:  func(d []byte) []byte { return compat.AppendUnsubscribedFilter(d, "", ts) },
			want: `{"type":"unsubscribed","payload":{},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type": "unsubscribed", "payload": map[string]any{}, "timestamp": float64(ts),
			},
		},
		{
			name: "unsubscribed channel",
			enc:  func(d []byte) []byte { return compat.AppendUnsubscribedChannel(d, compat.ChannelMetrics, ts) },
			want: `{"type":"unsubscribed","payload":{"channel":"metrics"},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type": "unsubscribed", "payload": map[string]any{"channel": "metrics"}, "timestamp": float64(ts),
			},
		},
		{
			name: "stats",
			enc: func(d []byte) []byte {
				out, err := compat.AppendStats(d, stats, ts)
				if err != nil {
					t.Fatalf("AppendStats: %v", err)
				}
				return out
			},
			want: `{"type":"stats","payload":{"connection":{"activeConnections":3}},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type":      "stats",
				"payload":   map[string]any{"connection": map[string]any{"activeConnections": float64(3)}},
				"timestamp": float64(ts),
			},
		},
		{
			name: "error",
			enc: func(d []byte) []byte {
				return compat.AppendError(d, compat.CodeInvalidFilter, `"payload.symbols" must be an array of strings`, ts)
			},
			want: `{"type":"error","payload":{"code":"INVALID_FILTER","message":"\"payload.symbols\" must be an array of strings"},"timestamp":1723190400003}`,
			wantMap: map[string]any{
				"type": "error",
				"payload": map[string]any{
					"code": "INVALID_FILTER", "message": `"payload.symbols" must be an array of strings`,
				},
				"timestamp": float64(ts),
			},
		},
		{
			name:    "data trade",
			enc:     func(d []byte) []byte { return compat.AppendData(d, sampleTrade(), ts) },
			want:    tradeWire,
			wantMap: tradeMap,
		},
		{
			name: "data kline with escaped symbol and spaced data",
			enc: func(d []byte) []byte {
				md := &dataflow.MarketData{
					Exchange: "okx", Symbol: "BTC\"USDT", Type: "kline_1m", Timestamp: 5,
					Data: json.RawMessage(`{ "open": "1", "interval": "1m" }`),
				}
				return compat.AppendData(d, md, 6)
			},
			want: `{"type":"kline_1m","payload":{"type":"kline_1m","exchange":"okx","symbol":"BTC\"USDT",` +
				`"data":{ "open": "1", "interval": "1m" },"timestamp":5},"timestamp":6}`,
			wantMap: map[string]any{
				"type": "kline_1m",
				"payload": map[string]any{
					"type": "kline_1m", "exchange": "okx", "symbol": `BTC"USDT`,
					"data":      map[string]any{"open": "1", "interval": "1m"},
					"timestamp": float64(5),
				},
				"timestamp": float64(6),
			},
		},
		{
			name: "data absent stays absent",
			enc: func(d []byte) []byte {
				return compat.AppendData(d, &dataflow.MarketData{Exchange: "e", Symbol: "s", Type: "t", Timestamp: 1}, 2)
			},
			want: `{"type":"t","payload":{"type":"t","exchange":"e","symbol":"s","timestamp":1},"timestamp":2}`,
			wantMap: map[string]any{
				"type": "t",
				"payload": map[string]any{
					"type": "t", "exchange": "e", "symbol": "s", "timestamp": float64(1),
				},
				"timestamp": float64(2),
			},
		},
		{
			name: "data null, no symbol, raw timestamp",
			enc: func(d []byte) []byte {
				return compat.AppendData(d, &dataflow.MarketData{Exchange: "e", Type: "t", Data: []byte("null"), TimestampRaw: []byte(`1723190400000.5`)}, 2)
			},
			want: `{"type":"t","payload":{"type":"t","exchange":"e","data":null,"timestamp":1723190400000.5},"timestamp":2}`,
			wantMap: map[string]any{
				"type": "t",
				"payload": map[string]any{
					"type": "t", "exchange": "e", "data": nil, "timestamp": 1723190400000.5,
				},
				"timestamp": float64(2),
			},
		},
		{
			name: "data with metadata (compat.forward_metadata)",
			enc: func(d []byte) []byte {
				return compat.AppendDataWithMetadata(d, &dataflow.MarketData{Exchange: "e", Symbol: "s", Type: "t", Timestamp: 1, Data: []byte(`{}`), Metadata: []byte(`{"q":1}`)}, 2)
			},
			want: `{"type":"t","payload":{"type":"t","exchange":"e","symbol":"s","data":{},"timestamp":1,"metadata":{"q":1}},"timestamp":2}`,
			wantMap: map[string]any{
				"type": "t",
				"payload": map[string]any{
					"type": "t", "exchange": "e", "symbol": "s", "data": map[string]any{}, "timestamp": float64(1), "metadata": map[string]any{"q": float64(1)},
				},
				"timestamp": float64(2),
			},
		},
		{
			name: "batch",
			enc: func(d []byte) []byte {
				m := compat.AppendData(nil, sampleTrade(), ts)
				return compat.AppendBatch(d, [][]byte{m, m}, ts+1)
			},
			want: `{"type":"batch","messages":[` + tradeWire + `,` + tradeWire + `],"count":2,"timestamp":1723190400004}`,
			wantMap: map[string]any{
				"type": "batch", "messages": []any{tradeMap, tradeMap}, "count": float64(2), "timestamp": float64(ts + 1),
			},
		},
		{
			name: "batch empty",
			enc:  func(d []byte) []byte { return compat.AppendBatch(d, nil, 9) },
			want: `{"type":"batch","messages":[],"count":0,"timestamp":9}`,
			wantMap: map[string]any{
				"type": "batch", "messages": []any{}, "count": float64(0), "timestamp": float64(9),
			},
		},
	}
}

func TestEncodersGolden(t *testing.T) {
	for _, tc := range encoderCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.enc(nil)
			if string(got) != tc.want {
				t.Fatalf("bytes mismatch\n got: %s\nwant: %s", got, tc.want)
			}

			// Append semantics: an existing prefix is kept and not modified.
			prefix := []byte("PREFIX")
			got = tc.enc(bytes.Clone(prefix))
			if !bytes.HasPrefix(got, prefix) || string(got[len(prefix):]) != tc.want {
				t.Fatalf("append to non-empty dst: got %s", got)
			}
		})
	}
}

func TestEncodersRoundTrip(t *testing.T) {
	for _, tc := range encoderCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.enc(nil)
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			var m map[string]any
			if err := json.Unmarshal(got, &m); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !reflect.DeepEqual(m, tc.wantMap) {
				t.Fatalf("decoded mismatch\n got: %#v\nwant: %#v", m, tc.wantMap)
			}
		})
	}
}

func TestAppendStatsError(t *testing.T) {
	dst := []byte("keep")
	got, err := compat.AppendStats(dst, map[string]any{"bad": make(chan int)}, ts)
	if err == nil {
		t.Fatal("AppendStats with an unencodable value: want error, got nil")
	}
	if string(got) != "keep" {
		t.Fatalf("dst changed on error: %q", got)
	}
}

func TestEncodersAllocs(t *testing.T) {
	md := sampleTrade()
	msg := compat.AppendData(nil, md, ts)
	batch := [][]byte{msg, msg, msg}
	filter := compat.FilterSpec{Exchange: []string{"binance"}, Symbols: []string{"BTC/USDT", "ETH/USDT"}}
	tests := []struct {
		name string
		enc  func(dst []byte) []byte
	}{
		{"AppendData", func(d []byte) []byte { return compat.AppendData(d, md, ts) }},
		{"AppendBatch", func(d []byte) []byte { return compat.AppendBatch(d, batch, ts) }},
		{"AppendWelcome", func(d []byte) []byte { return compat.AppendWelcome(d, "c-1", ts, ts) }},
		{"AppendPong", func(d []byte) []byte { return compat.AppendPong(d, ts) }},
		{"AppendSubscribedFilter", func(d []byte) []byte { return compat.AppendSubscribedFilter(d, "1", filter, ts) }},
		{"AppendSubscribedChannel", func(d []byte) []byte { return compat.AppendSubscribedChannel(d, "marketData", ts) }},
		{"AppendUnsubscribedFilter", func(d []byte) []byte { return compat.AppendUnsubscribedFilter(d, "1", ts) }},
		{"AppendUnsubscribedChannel", func(d []byte) []byte { return compat.AppendUnsubscribedChannel(d, "metrics", ts) }},
		{"AppendError", func(d []byte) []byte { return compat.AppendError(d, compat.CodeInternalError, "x\n", ts) }},
		{"AppendJSONString", func(d []byte) []byte { return compat.AppendJSONString(d, "a\"b\u2028\xff") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, 0, 4096)
			allocs := testing.AllocsPerRun(1000, func() {
				buf = tc.enc(buf[:0])
			})
			if allocs != 0 {
				t.Fatalf("%s into a pre-sized buffer: %v allocs/op, want 0", tc.name, allocs)
			}
		})
	}
}

func BenchmarkAppendData(b *testing.B) {
	md := sampleTrade()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(compat.AppendData(nil, md, ts))))
	for b.Loop() {
		buf = compat.AppendData(buf[:0], md, ts)
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	msg := compat.AppendData(nil, sampleTrade(), ts)
	msgs := make([][]byte, 32)
	for i := range msgs {
		msgs[i] = msg
	}
	buf := make([]byte, 0, 32*len(msg)+128)
	b.ReportAllocs()
	b.SetBytes(int64(len(compat.AppendBatch(nil, msgs, ts))))
	for b.Loop() {
		buf = compat.AppendBatch(buf[:0], msgs, ts)
	}
}
