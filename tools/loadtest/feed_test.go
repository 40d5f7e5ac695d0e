package loadtest

import (
	"encoding/json"
	"testing"
	"time"

	"wsproxy/dataflow"
)

func TestDemoFeedCarriesTheMixAndSendTime(t *testing.T) {
	f := newDemoFeed(Universe{Exchanges: []string{"a", "b"}, Symbols: []string{"BTC/USDT", "ETH/USDT"}})
	types := map[string]int{}
	exchanges := map[string]int{}
	for k := 0; k < 200; k++ {
		now := time.Unix(1723190400, int64(k))
		ch, body, cls := f.next(now)
		md, err := dataflow.Decode(body)
		if err != nil {
			t.Fatalf("message %d %s: %v", k, body, err)
		}
		if ch != "market-data-"+md.Type+"-"+md.Exchange || cls.exchange != md.Exchange || cls.symbol != md.Symbol || cls.trade != (md.Type == "trade") {
			t.Fatalf("message %d on %s classed %+v: %s", k, ch, cls, body)
		}
		if ts, ok := sentAt(md.Data); !ok || ts != now.UnixNano() {
			t.Fatalf("message %d: sentAt %d, %v; want %d", k, ts, ok, now.UnixNano())
		}
		var data map[string]any
		if err := json.Unmarshal(md.Data, &data); err != nil {
			t.Fatalf("message %d data: %v", k, err)
		}
		types[md.Type]++
		exchanges[md.Exchange]++
	}
	for _, typ := range []string{"trade", "ticker", "depth", "kline_1m"} {
		if types[typ] == 0 {
			t.Fatalf("types %v: no %s", types, typ)
		}
	}
	if exchanges["a"] == 0 || exchanges["b"] == 0 {
		t.Fatalf("exchanges %v: want both", exchanges)
	}
}

func TestWithSentAt(t *testing.T) {
	now := time.Unix(0, 42)
	for in, want := range map[string]string{`{}`: `{"sentAt":42}`, `{"a":1}`: `{"a":1,"sentAt":42}`} {
		if got := string(withSentAt([]byte(in), now)); got != want {
			t.Fatalf("withSentAt(%s) = %s, want %s", in, got, want)
		}
	}
}
