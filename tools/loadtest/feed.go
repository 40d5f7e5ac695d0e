package loadtest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"wsproxy/dataflow"
)

// Feeds the publisher can send (Config.Feed).
const (
	// FeedTrades: one trade per message, cycling over the universe (the
	// default).
	FeedTrades = "trades"
	// FeedDemo: the demo source's market-data mix — trades, tickers, depth
	// snapshots and 1-minute klines, shaped as dataflow's demo feed makes
	// them — one demo generator per exchange of the universe, over its
	// symbols, the exchanges taking turns tick by tick.
	FeedDemo = "demo"
)

// demoFeed hands out the demo mix one message at a time, each with the
// publisher's send time added to its data as "sentAt" (unix ns).
type demoFeed struct {
	gens    []*dataflow.DemoGenerator
	turn    int
	pending []*dataflow.MarketData
}

func newDemoFeed(u Universe) *demoFeed {
	f := &demoFeed{}
	for _, ex := range u.Exchanges {
		f.gens = append(f.gens, dataflow.NewDemoGenerator(dataflow.DemoConfig{Exchange: ex, Symbols: u.Symbols}))
	}
	return f
}

// wireMessage is the pipeline's message as collectors publish it.
type wireMessage struct {
	Exchange  string          `json:"exchange"`
	Symbol    string          `json:"symbol"`
	Type      string          `json:"type"`
	Timestamp int64           `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func (f *demoFeed) next(now time.Time) (channel string, body []byte, cls msgClass) {
	if len(f.pending) == 0 {
		f.pending = f.gens[f.turn%len(f.gens)].Tick(now)
		f.turn++
	}
	md := f.pending[0]
	f.pending = f.pending[1:]
	body, err := json.Marshal(wireMessage{Exchange: md.Exchange, Symbol: md.Symbol, Type: md.Type, Timestamp: md.Timestamp,
		Data: withSentAt(md.Data, now)})
	if err != nil {
		// The generator's data is a JSON object by construction.
		panic(fmt.Sprintf("loadtest: demo message %s: %v", md.Data, err))
	}
	return "market-data-" + md.Type + "-" + md.Exchange, body, msgClass{exchange: md.Exchange, symbol: md.Symbol, trade: md.Type == "trade"}
}

// withSentAt adds "sentAt":<unix ns> as the last member of the JSON object
// data.
func withSentAt(data []byte, now time.Time) []byte {
	b := make([]byte, 0, len(data)+32)
	b = append(b, data[:len(data)-1]...)
	if len(data) > 2 {
		b = append(b, ',')
	}
	b = append(b, `"sentAt":`...)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	return append(b, '}')
}
