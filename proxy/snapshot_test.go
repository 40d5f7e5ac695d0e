package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
)

// snapFeed: two tickers of one key (only the later may be sent), a trade
// (never sent), and one message of each other latest-wins type.
var snapFeed = [][3]string{
	{"binance", "ticker", "BTC/USDT"}, // seq 1000
	{"binance", "trade", "BTC/USDT"},
	{"binance", "ticker", "BTC/USDT"}, // seq 1002 supersedes 1000
	{"binance", "depth", "ETH/USDT"},
	{"okx", "orderbook", "BTC-USDT"},
	{"okx", "kline_5m", "BTC/USDT"},
}

// afterSubscribe sends sub, and returns the data frames that followed the
// "subscribed" reply, as exchange|type|symbol|seq in arrival order.
func afterSubscribe(t *testing.T, c *wstest.Client, sub string) []string {
	t.Helper()
	c.Send(t, sub)
	ms := syncPing(t, c)
	if len(ms) == 0 || ms[0].Type != "subscribed" {
		t.Fatalf("first reply to %s: %v", sub, ms)
	}
	var out []string
	for _, m := range ms[1:] {
		out = append(out, m.Str("payload", "exchange")+"|"+m.Type+"|"+m.Str("payload", "symbol")+"|"+m.Str("payload", "timestamp"))
	}
	return out
}

func TestSnapshotOnSubscribe(t *testing.T) {
	off := false
	tests := []struct {
		name string
		cfg  func(*config.Config)
		sub  string
		want []string // sorted
	}{
		{"filter gets the latest of matching keys", nil, `{"type":"subscribe","payload":{"symbols":["btcusdt"]}}`,
			[]string{"binance|ticker|BTC/USDT|1002", "okx|kline_5m|BTC/USDT|1005", "okx|orderbook|BTC-USDT|1004"}},
		{"data type filter", nil, `{"type":"subscribe","payload":{"dataTypes":["kline","depth"]}}`,
			[]string{"binance|depth|ETH/USDT|1003", "okx|kline_5m|BTC/USDT|1005"}},
		{"filter matching nothing remembered", nil, `{"type":"subscribe","payload":{"exchange":["kraken"]}}`, nil},
		{"marketData channel gets every key", func(c *config.Config) { c.Compat.UnfilteredReceiveAll = &off },
			`{"type":"subscribe","payload":{"channel":"marketData"}}`,
			[]string{"binance|depth|ETH/USDT|1003", "binance|ticker|BTC/USDT|1002", "okx|kline_5m|BTC/USDT|1005", "okx|orderbook|BTC-USDT|1004"}},
		{"marketData channel while receiving all already", nil, `{"type":"subscribe","payload":{"channel":"marketData"}}`,
			[]string{"binance|depth|ETH/USDT|1003", "binance|ticker|BTC/USDT|1002", "okx|kline_5m|BTC/USDT|1005", "okx|orderbook|BTC-USDT|1004"}},
		{"other channels get nothing", nil, `{"type":"subscribe","payload":{"channel":"metrics"}}`, nil},
		{"disabled", func(c *config.Config) { c.SnapshotOnSubscribe = &off }, `{"type":"subscribe","payload":{"symbols":["btcusdt"]}}`, nil},
		{"latest-wins types come from the config", func(c *config.Config) { c.LatestWinsTypes = []string{"Trade", "kline_*"} },
			`{"type":"subscribe","payload":{"symbols":["btcusdt"]}}`,
			[]string{"binance|trade|BTC/USDT|1001", "okx|kline_5m|BTC/USDT|1005"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tc.cfg)
			h.publishAll(t, snapFeed) // before the client connects
			c := h.dial(t)
			got := afterSubscribe(t, c, tc.sub)
			if strings.Join(sorted(got), ",") != strings.Join(tc.want, ",") {
				t.Fatalf("snapshot = %v\nwant       %v", got, tc.want)
			}
		})
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestSnapshotSkipsWhatTheClientAlreadyReceived: a client that saw the
// messages live (as a silent receive-all client, or through an earlier
// filter) gets no copy when it subscribes.
func TestSnapshotSkipsWhatTheClientAlreadyReceived(t *testing.T) {
	h := start(t, nil)
	c := h.dial(t) // receives everything live from now on
	h.publishAll(t, snapFeed)
	if got := dataKeys(syncPing(t, c)); len(got) != len(snapFeed) {
		t.Fatalf("live: %v", got)
	}
	if got := afterSubscribe(t, c, `{"type":"subscribe","payload":{"symbols":["BTCUSDT"]}}`); len(got) != 0 {
		t.Fatalf("already-received messages sent again: %v", got)
	}
	// A second, overlapping filter adds ETH: its depth was received live too.
	if got := afterSubscribe(t, c, `{"type":"subscribe","payload":{"exchange":["binance"]}}`); len(got) != 0 {
		t.Fatalf("overlapping filter: %v", got)
	}
	// Newer data, then a filter for a key the client has not been receiving
	// since it left receive-all mode: only that one is sent.
	h.publishAll(t, [][3]string{{"kraken", "ticker", "XBT/USD"}})
	syncPing(t, c)
	if got := afterSubscribe(t, c, `{"type":"subscribe","payload":{"exchange":["kraken"]}}`); strings.Join(got, ",") != "kraken|ticker|XBT/USD|1000" {
		t.Fatalf("kraken snapshot = %v", got)
	}
	// After unsubscribing everything (receive-all again), a filter brings
	// nothing the client already has.
	c.Send(t, `{"type":"unsubscribe"}`)
	c.NextOfType(t, "unsubscribed", wait)
	if got := afterSubscribe(t, c, `{"type":"subscribe","payload":{"exchange":["kraken"]}}`); len(got) != 0 {
		t.Fatalf("after resubscribe: %v", got)
	}
}

// TestSnapshotRacingLiveUpdatesIsExact subscribes clients while one key is
// updated continuously: each client must see that key's updates strictly in
// order, without a duplicate and without a gap, from its snapshot on.
func TestSnapshotRacingLiveUpdatesIsExact(t *testing.T) {
	for _, receiveAll := range []bool{false, true} {
		t.Run(fmt.Sprintf("unfiltered_receive_all=%v", receiveAll), func(t *testing.T) {
			ra := receiveAll
			h := start(t, func(c *config.Config) {
				c.Compat.UnfilteredReceiveAll = &ra
				c.Queue.MaxMessages = 20000
				c.Queue.MaxBytes = 16 << 20
			})
			const total = 3000
			const clients = 12
			var wg sync.WaitGroup
			subscribed := make(chan struct{}, clients)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 1; i <= total; i++ {
					md := dataflow.MarketData{Exchange: "binance", Type: "ticker", Symbol: "BTC/USDT", Timestamp: int64(i), Data: []byte(`{}`)}
					for h.in.Output(context.Background(), md) != nil { // dispatcher queue full: retry
					}
					if i == total/2 {
						for range clients { // let the rest race with the second half
							<-subscribed
						}
					}
				}
			}()
			cs := make([]*wstest.Client, clients)
			for i := range cs {
				cs[i] = h.dial(t)
				cs[i].Send(t, `{"type":"subscribe","payload":{"exchange":["binance"],"dataTypes":["ticker"]}}`)
				subscribed <- struct{}{}
			}
			wg.Wait()
			for i, c := range cs {
				var got []int64
				for len(got) == 0 || got[len(got)-1] != total {
					m := c.Next(t, wait)
					if m.Type != "ticker" {
						continue
					}
					var ts int64
					fmt.Sscan(m.Str("payload", "timestamp"), &ts)
					got = append(got, ts)
				}
				for j := 1; j < len(got); j++ {
					if got[j] != got[j-1]+1 {
						t.Fatalf("client %d: update %d after %d (duplicate, reorder or gap); first %d", i, got[j], got[j-1], got[0])
					}
				}
			}
		})
	}
}
