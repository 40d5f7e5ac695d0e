package dispatch_test

import (
	"fmt"
	"testing"

	"wsproxy/dataflow"
	"wsproxy/dispatch"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// BenchmarkDispatchTicker is the per-message cost the snapshot store adds:
// a ticker (latest-wins) dispatched to no recipient, over 1,000 keys, with
// and without snapshot_on_subscribe.
func BenchmarkDispatchTicker(b *testing.B) {
	msgs := make([]*dataflow.MarketData, 1000)
	for i := range msgs {
		msgs[i] = &dataflow.MarketData{Exchange: "binance", Symbol: fmt.Sprintf("S%d/USDT", i), Type: "ticker",
			Timestamp: 1723190400000, Data: []byte(`{"lastPrice":"1"}`)}
	}
	for _, snap := range []bool{false, true} {
		b.Run(fmt.Sprintf("snapshots=%v", snap), func(b *testing.B) {
			o := options(16)
			if snap {
				o.SnapshotKeys = 100000
			}
			d := dispatch.New(subscription.NewIndex[*pool.Conn](), o)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				d.Dispatch(msgs[i%len(msgs)])
			}
		})
	}
}
