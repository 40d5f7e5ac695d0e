package dispatch_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"wsproxy/dataflow"
	"wsproxy/dispatch"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// TestDispatcherDrainIsBounded: once its context ends, the dispatcher
// delivers the backlog only until the DrainUntil bound; the rest is
// discarded and counted, nothing silently.
func TestDispatcherDrainIsBounded(t *testing.T) {
	const n = 50000
	d := dispatch.New(subscription.NewIndex[*pool.Conn](), options(n))
	for i := 0; i < n; i++ {
		if !d.Deliver(&dataflow.MarketData{Exchange: "binance", Type: "trade", Symbol: "S" + strconv.Itoa(i), Data: []byte(`{}`)}) {
			t.Fatalf("message %d refused", i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.DrainUntil(time.Now())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run still draining")
	}
	st := d.Stats()
	if st.Discarded == 0 || st.Forwarded+st.Discarded != n || st.Queued != 0 {
		t.Fatalf("forwarded %d + discarded %d of %d, %d still queued", st.Forwarded, st.Discarded, n, st.Queued)
	}
}

// TestDispatcherDrainsEverythingWithoutBound: with no bound the backlog is
// delivered in full, as before.
func TestDispatcherDrainsEverythingWithoutBound(t *testing.T) {
	const n = 1000
	d := dispatch.New(subscription.NewIndex[*pool.Conn](), options(n))
	for i := 0; i < n; i++ {
		d.Deliver(&dataflow.MarketData{Exchange: "binance", Type: "trade", Symbol: "S", Data: []byte(`{}`)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.Run(ctx)
	if st := d.Stats(); st.Forwarded != n || st.Discarded != 0 {
		t.Fatalf("forwarded %d, discarded %d of %d", st.Forwarded, st.Discarded, n)
	}
}
