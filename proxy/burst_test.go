package proxy_test

import (
	"context"
	"fmt"
	"testing"

	"wsproxy/dataflow"
)

// TestBurstReachesPromptReader: 2,000 small messages back to back reach a
// client that reads promptly, every one in order, with the default queue
// bounds, however far behind its writer falls (the suite also runs with
// every core busy: make test-loaded). Once the burst has drained, the
// connection's queue holds no more than before it.
func TestBurstReachesPromptReader(t *testing.T) {
	const n = 2000
	h := start(t, nil)
	c := h.dial(t)
	syncPing(t, c)
	pc := h.poolConn(t, c.Conn.LocalAddr())
	idle := pc.QueueCapacity()
	for i := 0; i < n; i++ {
		md := dataflow.MarketData{Exchange: "binance", Type: "trade", Symbol: "BTC/USDT", Timestamp: int64(i + 1),
			Data: []byte(fmt.Sprintf(`{"id":"%d","price":"50000.1","quantity":"0.01","side":"buy"}`, i))}
		if err := h.in.Output(context.Background(), md); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i := 0; i < n; i++ {
		m := c.NextOfType(t, "trade", wait)
		if got := m.Str("payload", "data", "id"); got != fmt.Sprint(i) {
			t.Fatalf("trade %d: got id %s (%d shed so far: %v)", i, got, pc.Stats().Dropped, pc.Stats().Shed)
		}
	}
	if st := pc.Stats(); st.Dropped != 0 {
		t.Fatalf("shed %d frames: %v", st.Dropped, st.Shed)
	}
	if got := pc.QueueCapacity(); got > max(idle, 8) {
		t.Fatalf("queue holds %d frame slots after the burst, %d before it", got, idle)
	}
	if got := h.srv.Config().Queue.MaxMessages; got < n {
		t.Fatalf("default queue.max_messages %d cannot absorb the burst", got)
	}
}
