package compare_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"wsproxy/tools/compare"
)

var t0 = time.Date(2024, 8, 9, 8, 0, 0, 0, time.UTC)

// at returns t0 + ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func frame(typ, exchange, symbol string, ts int64, data string) []byte {
	return []byte(fmt.Sprintf(`{"type":%q,"payload":{"type":%q,"exchange":%q,"symbol":%q,"data":%s,"timestamp":%d},"timestamp":%d}`,
		typ, typ, exchange, symbol, data, ts, ts+3))
}

type obs struct {
	side  compare.Side
	frame []byte
	ms    int
}

func TestMatcher(t *testing.T) {
	trade := func(ts int64, price string) []byte {
		return frame("trade", "binance", "BTC/USDT", ts, `{"price":"`+price+`","id":"`+fmt.Sprint(ts)+`"}`)
	}
	L, P := compare.Legacy, compare.Proxy
	tests := []struct {
		name  string
		sub   string
		obs   []obs
		check func(t *testing.T, r *compare.Report)
	}{
		{
			name: "identical streams",
			obs:  []obs{{L, trade(1, "1"), 10}, {P, trade(1, "1"), 12}, {P, trade(2, "2"), 20}, {L, trade(2, "2"), 21}},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.Matched == 2 && r.Parity == 100 && r.Pass, r)
				want(t, r.Skew.Samples == 2 && r.Skew.Min == -1 && r.Skew.Max == 2, r)
				want(t, r.Types["trade"].Matched == 2 && r.Types["trade"].Legacy == 2 && r.Types["trade"].Proxy == 2, r)
			},
		},
		{
			name: "key order and whitespace do not matter",
			obs: []obs{
				{L, frame("ticker", "b", "S", 5, `{"a":1,"b":"x"}`), 10},
				{P, []byte(`{"timestamp":9,"payload":{"timestamp":5,"data":{ "b":"x", "a":1 },"symbol":"S","exchange":"b","type":"ticker"},"type":"ticker"}`), 11},
			},
			check: func(t *testing.T, r *compare.Report) { want(t, r.Matched == 1 && r.Pass, r) },
		},
		{
			name: "dropped message",
			obs:  []obs{{L, trade(1, "1"), 10}, {P, trade(1, "1"), 10}, {L, trade(2, "2"), 20}},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.Matched == 1 && r.MissingInProxy == 1 && r.MissingInLegacy == 0 && r.Parity == 50 && !r.Pass, r)
				want(t, len(r.MissingInProxySamples) == 1 && r.MissingInProxySamples[0].Key.Timestamp == 2, r)
				want(t, r.Types["trade"].MissingInProxy == 1, r)
			},
		},
		{
			name: "extra message on the proxy",
			obs:  []obs{{P, trade(3, "1"), 10}},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.MissingInLegacy == 1 && r.Parity == 0 && !r.Pass, r)
			},
		},
		{
			name: "changed field",
			obs:  []obs{{L, trade(1, "1"), 10}, {P, trade(1, "9"), 11}},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.Differing == 1 && r.Matched == 0 && r.MissingInProxy == 0 && !r.Pass, r)
				want(t, len(r.Diffs) == 1 && len(r.Diffs[0].Fields) == 1 && r.Diffs[0].Fields[0] == `data.price: legacy "1" proxy "9"`, r)
			},
		},
		{
			name: "extra payload field",
			obs: []obs{
				{L, trade(1, "1"), 10},
				{P, []byte(`{"type":"trade","payload":{"type":"trade","exchange":"binance","symbol":"BTC/USDT","data":{"price":"1","id":"1"},"timestamp":1,"receivedAt":2},"timestamp":4}`), 11},
			},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.Differing == 1 && r.Diffs[0].Fields[0] == "receivedAt: only in proxy 2", r)
			},
		},
		{
			name: "same key, several messages, any order",
			obs: []obs{
				{L, trade(1, "1"), 10}, {L, trade(1, "2"), 10}, {L, trade(1, "3"), 10},
				{P, trade(1, "3"), 11}, {P, trade(1, "1"), 11}, {P, trade(1, "2"), 11},
			},
			check: func(t *testing.T, r *compare.Report) { want(t, r.Matched == 3 && r.Pass, r) },
		},
		{
			name: "warm-up messages do not count",
			obs: []obs{
				{L, trade(1, "1"), -50}, // before the window, never on the proxy
				{P, trade(2, "2"), -1},  // proxy before the window, legacy inside
				{L, trade(2, "2"), 5},
				{L, trade(3, "3"), 5}, {P, trade(3, "3"), 6},
			},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.Matched == 1 && r.MissingInProxy == 0 && r.Pass && r.Legacy.WarmUp == 2 && r.Proxy.WarmUp == 1, r)
			},
		},
		{
			name: "messages first seen after the window do not count",
			obs:  []obs{{L, trade(1, "1"), 990}, {P, trade(1, "1"), 1500}, {P, trade(2, "2"), 1200}},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.Matched == 1 && r.MissingInLegacy == 0 && r.Proxy.AfterWindow == 1 && r.Pass, r)
			},
		},
		{
			name: "filter: legacy broadcast is filtered, proxy violation counts",
			sub:  `{"exchange":["binance"],"symbols":["btc-usdt"],"dataTypes":["trade"]}`,
			obs: []obs{
				{L, trade(1, "1"), 10}, {P, trade(1, "1"), 11},
				{L, frame("ticker", "binance", "BTC/USDT", 1, `{}`), 12},
				{P, frame("trade", "kraken", "BTC/USDT", 1, `{}`), 13},
			},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.Matched == 1 && r.OutOfFilter == 1 && r.Legacy.OutsideFilter == 1 && r.Parity == 50 && !r.Pass, r)
			},
		},
		{
			name: "batch envelope and broken frames are malformed",
			obs: []obs{
				{L, trade(1, "1"), 10},
				{P, []byte(`{"type":"batch","messages":[],"count":0,"timestamp":1}`), 11},
				{P, []byte(`{"type":"trade","payload":{"type":"ticker","exchange":"b","symbol":"s","data":{},"timestamp":1},"timestamp":1}`), 12},
				{P, []byte(`not json`), 13},
				{P, []byte(`{"type":"pong","timestamp":1}`), 14},
			},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.Proxy.Malformed == 3 && r.Proxy.Control == 1 && r.MissingInProxy == 1 && !r.Pass && len(r.Malformed) == 3, r)
			},
		},
		{
			name: "nothing compared fails",
			obs:  []obs{{L, []byte(`{"type":"welcome","payload":{},"timestamp":1}`), 10}},
			check: func(t *testing.T, r *compare.Report) {
				want(t, r.Parity == 0 && !r.Pass, r)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := compare.ParseSubscription(tc.sub)
			if err != nil {
				t.Fatal(err)
			}
			m := compare.NewMatcher(sub, 0, 5)
			m.Open(at(0))
			closed := false
			for _, o := range tc.obs {
				if o.ms > 1000 && !closed {
					m.Close(at(1000))
					closed = true
				}
				m.Observe(o.side, o.frame, at(o.ms))
			}
			m.Close(at(1000))
			r := m.Report(100)
			tc.check(t, r)
			if r2 := m.Report(100); r2.Parity != r.Parity || r2.Differing != r.Differing || r2.MissingInProxy != r.MissingInProxy {
				t.Fatalf("Report is not repeatable: %+v then %+v", r, r2)
			}
		})
	}
}

func want(t *testing.T, ok bool, r *compare.Report) {
	t.Helper()
	if !ok {
		var b strings.Builder
		_ = r.WriteText(&b)
		t.Fatalf("unexpected report:\n%s", b.String())
	}
}

func TestMatcherCountReached(t *testing.T) {
	sub, _ := compare.ParseSubscription("none")
	m := compare.NewMatcher(sub, 2, 5)
	m.Open(at(0))
	m.Observe(compare.Legacy, frame("trade", "b", "s", 1, `{}`), at(1))
	select {
	case <-m.Reached():
		t.Fatal("reached after one message")
	default:
	}
	m.Observe(compare.Legacy, frame("trade", "b", "s", 2, `{}`), at(2))
	select {
	case <-m.Reached():
	default:
		t.Fatal("not reached after two messages")
	}
	m.Observe(compare.Legacy, frame("trade", "b", "s", 3, `{}`), at(3)) // must not close twice
}

// TestMatcherWaitsForFrameArrivedBeforeClose: a frame stamped by Arrive
// inside the window but recorded only after the window closed is pending
// from its arrival on, so the run's grace waits for it and for its
// counterpart instead of ending with it missing (the window closes when the
// other side reaches the count, while this side's last frame is between its
// read and its record).
func TestMatcherWaitsForFrameArrivedBeforeClose(t *testing.T) {
	sub, _ := compare.ParseSubscription("none")
	m := compare.NewMatcher(sub, 0, 5)
	m.Open(time.Now().Add(-time.Second))
	f := frame("ticker", "b", "s", 7, `{"seq":377}`)

	arrived := m.Arrive(compare.Legacy)
	m.Close(time.Now())
	if n := m.Pending(); n != 1 {
		t.Fatalf("pending %d between arrival and record, want 1", n)
	}
	m.Observe(compare.Legacy, f, arrived)
	if n := m.Pending(); n != 1 {
		t.Fatalf("pending %d once recorded without counterpart, want 1", n)
	}
	// The counterpart arrives after the window: it completes the pair.
	m.Observe(compare.Proxy, f, m.Arrive(compare.Proxy))
	if n := m.Pending(); n != 0 {
		t.Fatalf("pending %d after the counterpart, want 0", n)
	}
	r := m.Report(100)
	if r.Matched != 1 || r.MissingInProxy != 0 || r.Legacy.Data != 1 || !r.Pass {
		t.Fatalf("matched %d, missing in proxy %d, legacy data %d, pass %v", r.Matched, r.MissingInProxy, r.Legacy.Data, r.Pass)
	}

	// A frame that arrives after the close is not pending.
	m.Arrive(compare.Legacy)
	if n := m.Pending(); n != 0 {
		t.Fatalf("pending %d for a frame arrived after the window, want 0", n)
	}
}

func TestParseSubscription(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		mode    compare.Mode
		message string
		err     bool
	}{
		{"empty", "", compare.ModeNone, "", false},
		{"none", "none", compare.ModeNone, "", false},
		{"channel", "channel", compare.ModeChannel, `{"type":"subscribe","payload":{"channel":"marketData"}}`, false},
		{"filter", `{"dataTypes":["trade"]}`, compare.ModeFilter, `{"type":"subscribe","payload":{"dataTypes":["trade"]}}`, false},
		{"unknown word", "all", 0, "", true},
		{"bad JSON", `{"dataTypes":`, 0, "", true},
		{"wrong field type", `{"dataTypes":"trade"}`, 0, "", true},
		{"channel object", `{"channel":"marketData"}`, 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := compare.ParseSubscription(tc.in)
			if tc.err {
				if !errors.Is(err, compare.ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil || s.Mode != tc.mode || string(s.Message()) != tc.message {
				t.Fatalf("got %+v %q %v", s, s.Message(), err)
			}
		})
	}
}

// FuzzObserve: whatever a server sends, the matcher neither panics nor
// loses count: every frame is data, control or malformed.
func FuzzObserve(f *testing.F) {
	f.Add(frame("trade", "binance", "BTC/USDT", 1, `{"price":"1"}`))
	f.Add([]byte(`{"type":"batch","messages":[1],"count":1,"timestamp":1}`))
	f.Add([]byte(`{"type":"trade","payload":{"type":"trade","exchange":"b","symbol":"s","data":null,"timestamp":1.5},"timestamp":"x"}`))
	f.Add([]byte(`{"type":"welcome"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sub, _ := compare.ParseSubscription(`{"dataTypes":["trade"]}`)
		m := compare.NewMatcher(sub, 1, 2)
		m.Open(at(0))
		m.Observe(compare.Legacy, b, at(1))
		m.Observe(compare.Proxy, b, at(2))
		r := m.Report(100)
		if !json.Valid(b) && (r.Legacy.Malformed != 1 || r.Proxy.Malformed != 1) {
			t.Fatalf("invalid frame %q not counted as malformed: %+v", b, r)
		}
		if r.Matched > 1 || r.Differing > 1 {
			t.Fatalf("one frame per side gave %+v", r)
		}
	})
}
