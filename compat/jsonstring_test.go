package compat_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"wsproxy/compat"
)

// stdString encodes s with encoding/json, HTML escaping off, which is the
// behaviour AppendJSONString promises to match.
func stdString(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

var trickyStrings = []struct {
	name string
	in   string
}{
	{"empty", ""},
	{"plain", "BTC/USDT"},
	{"quote", `say "hi"`},
	{"backslash", `C:\path\`},
	{"newline tab cr", "a\nb\tc\rd"},
	{"backspace formfeed", "\b\f"},
	{"nul and low controls", "\x00\x01\x1f"},
	{"del", "\x7f"},
	{"html", "<script>&</script>"},
	{"line separators", "a\u2028b\u2029c"},
	{"non-ascii", "日本語 ünïcödé €"},
	{"emoji", "🚀 to the moon"},
	{"invalid byte", "a\xffb"},
	{"truncated sequence", "\xe6\x97"},
	{"lone continuation", "\x80\x80x"},
	{"surrogate half", "\xed\xa0\x80"},
	{"overlong encoding", "\xc0\xaf"},
	{"mixed", "\"\\\n\x00\u2028\xfe<>"},
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, tc := range trickyStrings {
		t.Run(tc.name, func(t *testing.T) {
			got := string(compat.AppendJSONString(nil, tc.in))
			if want := stdString(t, tc.in); got != want {
				t.Fatalf("AppendJSONString(%q)\n got: %s\nwant: %s", tc.in, got, want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("invalid JSON: %s", got)
			}
			var back string
			if err := json.Unmarshal([]byte(got), &back); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if utf8.ValidString(tc.in) && back != tc.in {
				t.Fatalf("round trip: got %q, want %q", back, tc.in)
			}
		})
	}
}

func TestAppendJSONStringGolden(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"short escapes", "\"\\\b\f\n\r\t", `"\"\\\b\f\n\r\t"`},
		{"hex escapes are lowercase", "\x00\x1b\x1f", `"\u0000\u001b\u001f"`},
		{"html not escaped", "<&>", `"<&>"`},
		{"line separators", "\u2028\u2029", `"\u2028\u2029"`},
		{"invalid utf8 per byte", "\xff\xfe", `"\ufffd\ufffd"`},
		{"utf8 kept", "é", "\"é\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(compat.AppendJSONString(nil, tc.in)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func BenchmarkAppendJSONString(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = compat.AppendJSONString(buf[:0], "BTC/USDT")
	}
}
