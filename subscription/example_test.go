package subscription_test

import (
	"fmt"

	"wsproxy/config"
	"wsproxy/subscription"
)

type conn struct {
	id        string
	lastStamp uint64 // last message delivered to this connection
}

func Example() {
	ix := subscription.NewIndex[*conn]()
	a, b := &conn{id: "a"}, &conn{id: "b"}
	// The limits of the configuration (limits.*).
	lim := config.Default().SubscriptionLimits()

	// A client subscribes; its values are normalised once.
	f, err := subscription.NewFilter([]string{"Binance"}, []string{"btc/usdt"}, []string{"trade", "kline"}, lim)
	if err != nil {
		panic(err)
	}
	id, _ := ix.Add(a, f, lim)
	fmt.Println("filter", id, f.Exchanges, f.Symbols, f.DataTypes)
	// Overlapping filter: a matches the next message through two keys.
	g, _ := subscription.NewFilter(nil, []string{"BTC-USDT"}, nil, lim)
	ix.Add(a, g, lim)
	// A client that never subscribes receives everything.
	ix.SetUnfiltered(b, true)

	// The dispatcher normalises the message's key the same way, then
	// delivers once per connection with a per-message stamp.
	const stamp = 1
	m := ix.Match("binance", "kline_1m", subscription.NormalizeSymbol("BTC/USDT"))
	fmt.Println("entries:", m.Len())
	m.ForEach(func(c *conn) {
		if c.lastStamp != stamp {
			c.lastStamp = stamp
			fmt.Println("deliver to", c.id)
		}
	})
	// Unordered output:
	// filter 1 [binance] [BTCUSDT] [trade kline]
	// entries: 3
	// deliver to a
	// deliver to b
}
