package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
)

// publishAndSettle publishes msgs and waits until the dispatcher has handled
// all of them.
func (h *harness) publishAll(t *testing.T, msgs [][3]string) {
	t.Helper()
	before := h.srv.Dispatcher().Stats().Forwarded
	for i, m := range msgs {
		h.publish(t, m[0], m[1], m[2], int64(1000+i))
	}
	wstest.Eventually(t, wait, "dispatch", func() bool {
		return h.srv.Dispatcher().Stats().Forwarded >= before+uint64(len(msgs))
	})
}

func dataKeys(ms []wstest.Msg) []string {
	var out []string
	for _, m := range ms {
		if m.Type == "welcome" || m.Type == "pong" || m.Type == "subscribed" || m.Type == "unsubscribed" {
			continue
		}
		out = append(out, m.Str("payload", "exchange")+"|"+m.Type+"|"+m.Str("payload", "symbol"))
	}
	sort.Strings(out)
	return out
}

var feed = [][3]string{
	{"binance", "trade", "BTC/USDT"},
	{"binance", "ticker", "BTC/USDT"},
	{"binance", "trade", "ETH/USDT"},
	{"okx", "trade", "BTC-USDT"},
	{"okx", "kline_1m", "BTC/USDT"},
	{"binance", "kline_1h", "ETH/USDT"},
	{"binance", "depth", "btc_usdt"},
}

func TestWelcomeShapeAndPing(t *testing.T) {
	h := start(t, nil)
	c := wstest.Dial(t, h.url)
	w := c.Next(t, wait)
	if w.Type != "welcome" || w.Str("payload", "connectionId") == "" || w.Payload["serverTime"] == nil || w.Fields["timestamp"] == nil {
		t.Fatalf("welcome = %s", w.Raw)
	}
	c.Send(t, `{"type":"ping","timestamp":"2024-08-09T08:00:00.000Z"}`)
	p := c.NextOfType(t, "pong", wait)
	if len(p.Fields) != 2 || p.Fields["timestamp"] == nil {
		t.Fatalf("pong = %s", p.Raw)
	}
}

func TestUnfilteredClientReceivesEverything(t *testing.T) {
	h := start(t, nil)
	c := h.dial(t) // never subscribes, like the deployed frontend
	h.publishAll(t, feed)
	got := dataKeys(syncPing(t, c))
	if len(got) != len(feed) {
		t.Fatalf("unfiltered client got %d messages, want %d: %v", len(got), len(feed), got)
	}
}

func TestUnfilteredReceiveAllOff(t *testing.T) {
	h := start(t, func(c *config.Config) {
		f := false
		c.Compat.UnfilteredReceiveAll = &f
		c.SnapshotOnSubscribe = &f // counted by TestSnapshot*
	})
	c := h.dial(t)
	h.publishAll(t, feed)
	if got := dataKeys(syncPing(t, c)); len(got) != 0 {
		t.Fatalf("client without filter got %v with unfiltered_receive_all off", got)
	}
	c.Send(t, `{"type":"subscribe","payload":{"channel":"marketData"}}`)
	c.NextOfType(t, "subscribed", wait)
	h.publishAll(t, feed)
	if got := dataKeys(syncPing(t, c)); len(got) != len(feed) {
		t.Fatalf("marketData channel subscriber got %d, want %d", len(got), len(feed))
	}
}

func TestFilteredDelivery(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		want   []string
	}{
		{"exchange only", `{"exchange":["okx"]}`, []string{"okx|kline_1m|BTC/USDT", "okx|trade|BTC-USDT"}},
		{"symbol forms are one symbol", `{"symbols":["btc-usdt"],"dataTypes":["trade","depth"]}`,
			[]string{"binance|depth|btc_usdt", "binance|trade|BTC/USDT", "okx|trade|BTC-USDT"}},
		{"kline matches every kline type", `{"dataTypes":["kline"]}`, []string{"binance|kline_1h|ETH/USDT", "okx|kline_1m|BTC/USDT"}},
		{"AND across fields, OR within", `{"exchange":["binance"],"symbols":["ETHUSDT","BTCUSDT"],"dataTypes":["ticker","kline_1h"]}`,
			[]string{"binance|kline_1h|ETH/USDT", "binance|ticker|BTC/USDT"}},
		{"empty arrays match all", `{"exchange":[],"symbols":[],"dataTypes":[]}`, nil},
		{"case of exchange and type ignored", `{"exchange":["OKX"],"dataTypes":["TRADE"]}`, []string{"okx|trade|BTC-USDT"}},
	}
	// Subtests share a server: snapshots of earlier subtests' messages are
	// covered by TestSnapshot*.
	h := start(t, func(c *config.Config) { f := false; c.SnapshotOnSubscribe = &f })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial(t)
			c.Send(t, `{"type":"subscribe","payload":`+tc.filter+`}`)
			sub := c.NextOfType(t, "subscribed", wait)
			if sub.Str("payload", "filterId") == "" {
				t.Fatalf("subscribed without filterId: %s", sub.Raw)
			}
			h.publishAll(t, feed)
			got := dataKeys(syncPing(t, c))
			want := tc.want
			if want == nil {
				want = dataKeys(nil)
				for _, f := range feed {
					want = append(want, f[0]+"|"+f[1]+"|"+f[2])
				}
				sort.Strings(want)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("got  %v\nwant %v", got, want)
			}
		})
	}
}

func TestOverlappingFiltersDeliverOnce(t *testing.T) {
	h := start(t, nil)
	c := h.dial(t)
	for _, f := range []string{`{"exchange":["binance"]}`, `{"symbols":["BTC/USDT"]}`, `{"dataTypes":["trade"]}`, `{}`} {
		c.Send(t, `{"type":"subscribe","payload":`+f+`}`)
		c.NextOfType(t, "subscribed", wait)
	}
	h.publishAll(t, feed)
	got := dataKeys(syncPing(t, c))
	if len(got) != len(feed) {
		t.Fatalf("got %d messages for %d published with 4 overlapping filters: %v", len(got), len(feed), got)
	}
}

func TestUnsubscribe(t *testing.T) {
	h := start(t, func(c *config.Config) { f := false; c.Compat.UnfilteredReceiveAll = &f })
	c := h.dial(t)
	c.Send(t, `{"type":"subscribe","payload":{"exchange":["binance"]}}`)
	id1 := c.NextOfType(t, "subscribed", wait).Str("payload", "filterId")
	c.Send(t, `{"type":"subscribe","payload":{"exchange":["okx"]}}`)
	id2 := c.NextOfType(t, "subscribed", wait).Str("payload", "filterId")
	if id1 == id2 {
		t.Fatalf("filter ids not unique: %q", id1)
	}

	c.Send(t, `{"type":"unsubscribe","payload":{"filterId":"`+id1+`"}}`)
	u := c.NextOfType(t, "unsubscribed", wait)
	if u.Str("payload", "filterId") != id1 {
		t.Fatalf("unsubscribed = %s", u.Raw)
	}
	h.publishAll(t, feed)
	for _, k := range dataKeys(syncPing(t, c)) {
		if !strings.HasPrefix(k, "okx|") {
			t.Fatalf("after removing the binance filter got %s", k)
		}
	}

	// An unknown id is echoed, as the refactored legacy proxy did, and
	// nothing is removed.
	c.Send(t, `{"type":"unsubscribe","payload":{"filterId":"nope"}}`)
	if got := syncPing(t, c); len(got) != 1 || got[0].Type != "unsubscribed" || got[0].Str("payload", "filterId") != "nope" {
		t.Fatalf("unknown filterId answered %v", got)
	}
	h.publishAll(t, feed)
	if got := dataKeys(syncPing(t, c)); len(got) == 0 {
		t.Fatal("an unknown filterId removed the okx filter")
	}

	c.Send(t, `{"type":"unsubscribe"}`)
	u = c.NextOfType(t, "unsubscribed", wait)
	if _, has := u.Payload["filterId"]; has {
		t.Fatalf("unsubscribe-all reply has filterId: %s", u.Raw)
	}
	h.publishAll(t, feed)
	if got := dataKeys(syncPing(t, c)); len(got) != 0 {
		t.Fatalf("after unsubscribe-all got %v", got)
	}
}

func TestLegacyChannelForms(t *testing.T) {
	h := start(t, nil)
	c := h.dial(t)
	c.Send(t, `{"type":"subscribe","payload":{"channel":"marketData"},"timestamp":"2024-01-01T00:00:00Z"}`)
	s := c.NextOfType(t, "subscribed", wait)
	if string(mustJSON(t, s.Payload)) != `{"channel":"marketData"}` {
		t.Fatalf("subscribed = %s", s.Raw)
	}
	h.publishAll(t, feed[:2])
	if got := dataKeys(syncPing(t, c)); len(got) != 2 {
		t.Fatalf("marketData subscriber got %v", got)
	}
	c.Send(t, `{"type":"unsubscribe","payload":{"channel":"marketData"}}`)
	u := c.NextOfType(t, "unsubscribed", wait)
	if string(mustJSON(t, u.Payload)) != `{"channel":"marketData"}` {
		t.Fatalf("unsubscribed = %s", u.Raw)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDataMessageLegacyShape(t *testing.T) {
	h := start(t, nil)
	c := h.dial(t)
	h.publish(t, "binance", "trade", "BTC/USDT", 1723190400000)
	m := c.NextOfType(t, "trade", wait)
	var top map[string]json.RawMessage
	if err := json.Unmarshal(m.Raw, &top); err != nil {
		t.Fatal(err)
	}
	if len(top) != 3 || top["payload"] == nil || top["timestamp"] == nil {
		t.Fatalf("data message keys: %s", m.Raw)
	}
	want := `{"type":"trade","exchange":"binance","symbol":"BTC/USDT","data":{"seq":1723190400000},"timestamp":1723190400000}`
	if string(top["payload"]) != want {
		t.Fatalf("payload = %s\nwant      %s", top["payload"], want)
	}
	if !strings.HasPrefix(string(m.Raw), `{"type":"trade","payload":`) {
		t.Fatalf("key order: %s", m.Raw)
	}
}

func TestGetStats(t *testing.T) {
	h := start(t, nil)
	c := h.dial(t)
	c.Send(t, `{"type":"subscribe","payload":{"exchange":["binance"]}}`)
	c.NextOfType(t, "subscribed", wait)
	h.publishAll(t, feed)
	syncPing(t, c)
	c.Send(t, `{"type":"getStats"}`)
	s := c.NextOfType(t, "stats", wait)
	for _, k := range []string{"connection", "subscription", "pool", "dataflow", "health"} {
		if s.Payload[k] == nil {
			t.Fatalf("stats payload lacks %q: %s", k, s.Raw)
		}
	}
	conn := s.Payload["connection"].(map[string]any)
	if conn["activeConnections"].(float64) != 1 || conn["messagesForwarded"].(float64) != float64(len(feed)) {
		t.Fatalf("connection stats = %v", conn)
	}
	if sub := s.Payload["subscription"].(map[string]any); sub["activeFilters"].(float64) != 1 {
		t.Fatalf("subscription stats = %v", sub)
	}
}

// TestBadInputKeepsConnection checks the answers the recorded legacy
// servers gave to unusable frames (transcripts, scenario 7): frames that are
// not JSON get "Invalid message format", malformed filters and limits get an
// extension error, everything else gets no reply at all; the connection and
// its filter survive every one, and each is counted.
func TestBadInputKeepsConnection(t *testing.T) {
	answered := []struct{ name, msg, code, text string }{
		{"not JSON", `{"type":`, "INVALID_MESSAGE", "Invalid message format"},
		{"JSON null", `null`, "INVALID_MESSAGE", "Invalid message format"},
		{"filter field not array", `{"type":"subscribe","payload":{"exchange":"binance"}}`, "INVALID_FILTER", ""},
		{"too many symbols", `{"type":"subscribe","payload":{"symbols":[` + manySymbols(101) + `]}}`, "LIMIT_EXCEEDED", ""},
	}
	silent := []struct{ name, msg string }{
		{"empty array", `[]`},
		{"string", `"str"`},
		{"empty object", `{}`},
		{"not an object", `[1,2]`},
		{"no type", `{"payload":{}}`},
		{"unknown type", `{"type":"unknown"}`},
		{"wrong-case type", `{"type":"Ping"}`},
		{"subscribe without payload", `{"type":"subscribe"}`},
		{"subscribe with a string payload", `{"type":"subscribe","payload":"x"}`},
		{"subscribe with an array payload", `{"type":"subscribe","payload":[]}`},
	}
	h := start(t, func(c *config.Config) { f := false; c.Compat.UnfilteredReceiveAll = &f })
	c := h.dial(t)
	c.Send(t, `{"type":"subscribe","payload":{"exchange":["okx"]}}`)
	c.NextOfType(t, "subscribed", wait)
	for _, tc := range answered {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(t, tc.msg)
			got := syncPing(t, c)
			if len(got) != 1 || got[0].Type != "error" || got[0].Str("payload", "code") != tc.code || got[0].Str("payload", "message") == "" ||
				(tc.text != "" && got[0].Str("payload", "message") != tc.text) {
				t.Fatalf("answer %v, want one error %s %q", got, tc.code, tc.text)
			}
		})
	}
	for _, tc := range silent {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(t, tc.msg)
			if got := syncPing(t, c); len(got) != 0 {
				t.Fatalf("%s answered %s, want nothing", tc.msg, got[0].Raw)
			}
		})
	}
	t.Run("binary frames are read as text", func(t *testing.T) {
		if err := c.Conn.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if m := c.Next(t, wait); m.Type != "pong" {
			t.Fatalf("binary ping answered %s", m.Raw)
		}
		if err := c.Conn.WriteMessage(websocket.BinaryMessage, []byte{0x00, 0x01, 0xfe, 0xff}); err != nil {
			t.Fatal(err)
		}
		if got := syncPing(t, c); len(got) != 1 || got[0].Str("payload", "message") != "Invalid message format" {
			t.Fatalf("binary non-UTF-8 answered %v", got)
		}
	})
	// The connection and its filter survive every bad message, and every
	// one is counted.
	h.publishAll(t, feed)
	if got := dataKeys(syncPing(t, c)); len(got) != 2 {
		t.Fatalf("after bad input the okx filter delivered %v", got)
	}
	c.Send(t, `{"type":"getStats"}`)
	st := c.NextOfType(t, "stats", wait)
	conn := st.Payload["connection"].(map[string]any)
	if want := float64(len(answered) + len(silent) + 1); conn["errorsEncountered"].(float64) != want {
		t.Fatalf("errorsEncountered = %v, want %v", conn["errorsEncountered"], want)
	}
}

// TestAnyDataTypeAccepted checks that a filter on a data type the proxy has
// not heard of is accepted and matches exactly that type, and that "kline"
// also matches the literal type kline: the pipeline defines the types.
func TestAnyDataTypeAccepted(t *testing.T) {
	h := start(t, func(c *config.Config) { f := false; c.Compat.UnfilteredReceiveAll = &f })
	c := h.dial(t)
	c.Send(t, `{"type":"subscribe","payload":{"dataTypes":["bookTicker","kline"]}}`)
	sub := c.NextOfType(t, "subscribed", wait)
	if f, _ := json.Marshal(sub.Payload["filter"]); string(f) != `{"dataTypes":["bookTicker","kline"]}` {
		t.Fatalf("subscribed echoes %s, want the filter exactly as sent", f)
	}
	h.publishAll(t, [][3]string{{"binance", "trade", "BTC/USDT"}, {"binance", "bookTicker", "BTC/USDT"}, {"binance", "kline", "BTC/USDT"}, {"binance", "kline_1m", "BTC/USDT"}})
	got := dataKeys(syncPing(t, c))
	sort.Strings(got)
	if want := []string{"binance|bookTicker|BTC/USDT", "binance|kline_1m|BTC/USDT", "binance|kline|BTC/USDT"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

func manySymbols(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf(`"S%dUSDT"`, i)
	}
	return strings.Join(s, ",")
}

func TestTooManyFilters(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Limits.MaxFilters = 2 })
	c := h.dial(t)
	for i := 0; i < 2; i++ {
		c.Send(t, `{"type":"subscribe","payload":{}}`)
		c.NextOfType(t, "subscribed", wait)
	}
	c.Send(t, `{"type":"subscribe","payload":{}}`)
	if e := c.NextOfType(t, "error", wait); e.Str("payload", "code") != "LIMIT_EXCEEDED" {
		t.Fatalf("third filter: %s", e.Raw)
	}
}

func TestBatchEnvelopeOnlyWhenAsked(t *testing.T) {
	h := start(t, nil)
	plain := h.dial(t)
	bc := wstest.Dial(t, strings.TrimSuffix(h.url, "/ws")+"/ws?batch=1")
	bc.NextOfType(t, "welcome", wait)
	h.publishAll(t, feed)
	for _, m := range syncPing(t, plain) {
		if m.Type == "batch" {
			t.Fatalf("plain client got a batch envelope: %s", m.Raw)
		}
	}
	total := 0
	for _, m := range syncPing(t, bc) {
		if m.Type != "batch" {
			t.Fatalf("batch client got %s", m.Raw)
		}
		msgs := m.Fields["messages"].([]any)
		if int(m.Fields["count"].(float64)) != len(msgs) || m.Fields["timestamp"] == nil {
			t.Fatalf("envelope = %s", m.Raw)
		}
		for _, x := range msgs {
			if x.(map[string]any)["payload"] == nil {
				t.Fatalf("envelope entry not a data message: %s", m.Raw)
			}
		}
		total += len(msgs)
	}
	if total != len(feed) {
		t.Fatalf("batch client got %d messages in envelopes, want %d", total, len(feed))
	}
}

func TestFlushIntervalHoldsUntilFlush(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Batch.FlushInterval = time.Hour })
	c := h.dial(t)
	h.publishAll(t, feed[:3])
	if m, ok := c.TryNext(300 * time.Millisecond); ok {
		t.Fatalf("frame written despite a 1h flush interval: %s", m.Raw)
	}
	if r := h.srv.Pool().FlushAll(); r.Connections != 1 || r.Messages != 3 {
		t.Fatalf("FlushAll = %+v, want 1 connection, 3 messages", r)
	}
	for i := 0; i < 3; i++ {
		c.Next(t, wait)
	}
}

func TestFlushOnTimeout(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Batch.FlushInterval = 20 * time.Millisecond })
	c := h.dial(t)
	h.publishAll(t, feed)
	for range feed {
		if m := c.Next(t, wait); m.Payload["data"] == nil {
			t.Fatalf("unexpected frame %s", m.Raw)
		}
	}
}

// TestNothingUnfilteredAfterSubscribed: once a client has read "subscribed",
// no message outside its filter may follow, even while the pipeline is busy
// (the reply is released only after the connection left unfiltered delivery).
func TestNothingUnfilteredAfterSubscribed(t *testing.T) {
	h := start(t, nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = h.in.Output(context.Background(), dataflow.MarketData{Exchange: "binance", Type: "trade", Symbol: "BTC/USDT", Timestamp: i, Data: []byte(`{}`)})
		}
	}()
	defer func() { close(stop); <-done }()
	for i := 0; i < 20; i++ {
		c := h.dial(t)
		c.Send(t, `{"type":"subscribe","payload":{"exchange":["okx"]}}`)
		c.NextOfType(t, "subscribed", wait)
		for _, m := range syncPing(t, c) {
			if m.Type == "trade" {
				t.Fatalf("round %d: binance trade after subscribed to okx only: %s", i, m.Raw)
			}
		}
		_ = c.Conn.Close()
	}
}

// TestLegacyChannelsLeaveDeliveryUnchanged checks A's channel behaviour: any
// channel name is acknowledged, and neither subscribing nor unsubscribing a
// channel changes what a client receives (A's feeder broadcast without a
// channel). With compat.unfiltered_receive_all off, the marketData channel
// is how a client asks for everything.
func TestLegacyChannelsLeaveDeliveryUnchanged(t *testing.T) {
	h := start(t, nil)
	c := h.dial(t)
	for _, msg := range []string{
		`{"type":"subscribe","payload":{"channel":"metrics"}}`,
		`{"type":"subscribe","payload":{"channel":"anything"}}`,
		`{"type":"unsubscribe","payload":{"channel":"marketData"}}`,
	} {
		c.Send(t, msg)
		got := syncPing(t, c)
		var v map[string]any
		_ = json.Unmarshal([]byte(msg), &v)
		want := v["payload"].(map[string]any)["channel"]
		if len(got) != 1 || !strings.HasSuffix(got[0].Type, "subscribed") || got[0].Payload["channel"] != want {
			t.Fatalf("%s answered %v", msg, got)
		}
	}
	h.publishAll(t, feed)
	if got := dataKeys(syncPing(t, c)); len(got) != len(feed) {
		t.Fatalf("after channel changes received %v, want all %d", got, len(feed))
	}
	c.Send(t, `{"type":"getStats"}`)
	st := c.NextOfType(t, "stats", wait)
	subs, _ := json.Marshal(st.Payload["subscriptions"])
	if string(subs) != `{"channels":["anything","metrics"],"total":2}` {
		t.Fatalf("stats subscriptions = %s", subs)
	}

	off := start(t, func(c *config.Config) { f := false; c.Compat.UnfilteredReceiveAll = &f })
	d := off.dial(t)
	d.Send(t, `{"type":"subscribe","payload":{"channel":"marketData"}}`)
	d.NextOfType(t, "subscribed", wait)
	off.publishAll(t, feed)
	if got := dataKeys(syncPing(t, d)); len(got) != len(feed) {
		t.Fatalf("marketData channel with unfiltered_receive_all off received %v", got)
	}
}

// TestForwardMetadata checks that the data payload has exactly the legacy
// server's five keys by default, and B's metadata with
// compat.forward_metadata.
func TestForwardMetadata(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("forward_metadata=", on), func(t *testing.T) {
			h := start(t, func(c *config.Config) { c.Compat.ForwardMetadata = on })
			c := h.dial(t)
			md := dataflow.MarketData{Exchange: "binance", Type: "trade", Symbol: "BTC/USDT", Timestamp: 1, ReceivedAt: 2,
				Data: []byte(`{"p":1}`), Metadata: []byte(`{"source":"x"}`)}
			if err := h.in.Output(context.Background(), md); err != nil {
				t.Fatal(err)
			}
			m := c.NextOfType(t, "trade", wait)
			keys := make([]string, 0, len(m.Payload))
			for k := range m.Payload {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			want := "data exchange symbol timestamp type"
			if on {
				want = "data exchange metadata symbol timestamp type"
			}
			if strings.Join(keys, " ") != want {
				t.Fatalf("payload keys %v, want %s (%s)", keys, want, m.Raw)
			}
		})
	}
}
