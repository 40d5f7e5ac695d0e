package compat_test

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"wsproxy/compat"
)

func FuzzDecodeClient(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping"}`,
		`{"type":"ping","timestamp":"2024-08-09T08:00:00.000Z"}`,
		`{"type":"subscribe","payload":{"exchange":["binance"],"symbols":["BTC/USDT"],"dataTypes":["trade","kline"]}}`,
		`{"type":"subscribe","payload":{"channel":"marketData"}}`,
		`{"type":"subscribe"}`,
		`{"type":"subscribe","payload":{"symbols":["a",null]}}`,
		`{"type":"unsubscribe","payload":{"filterId":"f1"}}`,
		`{"type":"unsubscribe","payload":{"filterId":1e400}}`,
		`{"type":"unsubscribe","payload":{"filterId":-0.0}}`,
		`{"type":"unsubscribe","payload":{"channel":"metrics"}}`,
		`{"type":"getStats"}`,
		`{"type":1}`,
		`{"type":"x\ud800"}`,
		`[]`,
		`null`,
		``,
		"{\"type\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := compat.DecodeClient(b)
		if err != nil {
			switch err.Code {
			case compat.CodeInvalidMessage, compat.CodeUnknownMessageType, compat.CodeInvalidFilter:
			default:
				t.Fatalf("unexpected code %q", err.Code)
			}
			// Every decoder error must be reportable as a valid frame.
			if out := compat.AppendError(nil, err.Code, err.Message, 1); !json.Valid(out) {
				t.Fatalf("error frame is not valid JSON: %s", out)
			}
			return
		}
		if msg.Kind < compat.KindPing || msg.Kind > compat.KindGetStats {
			t.Fatalf("ok with invalid kind %d", msg.Kind)
		}
		if msg.Kind.String() != msg.Type {
			t.Fatalf("kind %v for type %q", msg.Kind, msg.Type)
		}
		// Any channel name is accepted (as the legacy server did) and can be
		// echoed back as a valid frame.
		if msg.Channel != "" && msg.Kind != compat.KindSubscribe && msg.Kind != compat.KindUnsubscribe {
			t.Fatalf("channel %q on a %v", msg.Channel, msg.Kind)
		}
		if out := compat.AppendSubscribedChannel(nil, msg.Channel, 1); !json.Valid(out) {
			t.Fatalf("subscribed frame is not valid JSON: %s", out)
		}
		// What was accepted can be echoed back as a valid frame.
		if out := compat.AppendSubscribedFilter(nil, msg.FilterID, msg.Filter, 1); !json.Valid(out) {
			t.Fatalf("subscribed frame is not valid JSON: %s", out)
		}
	})
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{
		"", "BTC/USDT", `"quoted"`, `back\slash`, "\x00\x1f\x7f", "\b\f\n\r\t",
		"<>&", "\u2028\u2029", "日本語", "🚀", "\xff", "\xe6\x97", "\xed\xa0\x80", "\xc0\xaf",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := compat.AppendJSONString([]byte("x"), s)[1:]
		if !json.Valid(out) {
			t.Fatalf("AppendJSONString(%q) = %s: invalid JSON", s, out)
		}
		if want := stdString(t, s); string(out) != want {
			t.Fatalf("AppendJSONString(%q) = %s, encoding/json gives %s", s, out, want)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", out, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("round trip: got %q, want %q", back, s)
		}
	})
}
