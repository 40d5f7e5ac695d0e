package dataflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wsproxy/dataflow"
	"wsproxy/internal/configtest"
	"wsproxy/internal/redistest"
	"wsproxy/internal/wstest"
)

const wait = 10 * time.Second

// run starts src against s and stops it at the end of the test.
func run(t testing.TB, src dataflow.Source, s dataflow.Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, s) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s.Run: %v", src.Name(), err)
			}
		case <-time.After(wait):
			t.Errorf("%s.Run did not return after cancel", src.Name())
		}
	})
}

func msg(seq int) string {
	return fmt.Sprintf(`{"exchange":"binance","symbol":"BTC/USDT","type":"trade","timestamp":%d,"data":{"seq":%d}}`, 1700000000000+seq, seq)
}

// seqs returns the data.seq of every delivered message, in order.
func (s *sink) seqs(t testing.TB) []int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.got))
	for _, md := range s.got {
		var d struct{ Seq int }
		if err := json.Unmarshal(md.Data, &d); err != nil {
			t.Fatalf("data %s: %v", md.Data, err)
		}
		out = append(out, d.Seq)
	}
	return out
}

func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func wantSeqs(t testing.TB, got []int, from, to int) {
	t.Helper()
	if len(got) != to-from+1 {
		t.Fatalf("got %d messages, want %d (%d..%d): %v", len(got), to-from+1, from, to, got)
	}
	for i, v := range got {
		if v != from+i {
			t.Fatalf("message %d has seq %d, want %d (duplicate, gap or reorder): %v", i, v, from+i, got)
		}
	}
}

func TestRedisPubSubDeliversAndCountsBadMessages(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t)
	src, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: addr, Pattern: prefix + "market-data-*"}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	run(t, src, s)
	wstest.Eventually(t, wait, "subscribed", func() bool { return src.Stats().Connected })
	rdb := redistest.Client(t, addr)
	ctx := context.Background()
	bad := []string{
		`not json`,
		`{"symbol":7,"type":"trade","timestamp":1,"data":{}}`,
		`"a string"`,
		`[1,2]`,
	}
	for i := 1; i <= 50; i++ {
		ch := prefix + "market-data-trade-binance"
		if i%10 == 0 {
			rdb.Publish(ctx, ch, bad[(i/10)%len(bad)])
		}
		if err := rdb.Publish(ctx, ch, msg(i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rdb.Publish(ctx, "other-"+prefix+"market-data-x", msg(99)) // not matching the pattern
	wstest.Eventually(t, wait, "50 messages", func() bool { return s.len() >= 50 })
	wstest.Eventually(t, wait, "5 rejections", func() bool { return src.Stats().Rejected == 5 })
	wantSeqs(t, s.seqs(t), 1, 50)
	st := src.Stats()
	if st.Received != 50 || st.Dropped != 0 || st.LastReject == "" || st.LastError != "" || st.Type != "redis" {
		t.Fatalf("stats = %+v", st)
	}
	if s.got[0].ReceivedAt == 0 {
		t.Fatal("receivedAt not stamped")
	}

	// A message naming no exchange takes the channel's, as the legacy
	// collector took its adapter's name.
	rdb.Publish(ctx, prefix+"market-data-kline_1m-okx", `{"symbol":"BTC/USDT","type":"kline_1m","timestamp":1,"data":{"seq":51}}`)
	wstest.Eventually(t, wait, "51 messages", func() bool { return s.len() >= 51 })
	s.mu.Lock()
	last := s.got[50]
	s.mu.Unlock()
	if last.Exchange != "okx" {
		t.Fatalf("exchange %q, want the channel's okx", last.Exchange)
	}
}

// TestRedisPubSubCountsDropsWithoutBlocking: when the proxy cannot take
// more, the read loop keeps reading and counts every drop.
func TestRedisPubSubCountsDropsWithoutBlocking(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t)
	src, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: addr, Pattern: prefix + "market-data-*"}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{full: true}
	run(t, src, s)
	wstest.Eventually(t, wait, "subscribed", func() bool { return src.Stats().Connected })
	rdb := redistest.Client(t, addr)
	const n = 2000
	pipe := rdb.Pipeline()
	for i := 1; i <= n; i++ {
		pipe.Publish(context.Background(), prefix+"market-data-trade-binance", msg(i))
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, wait, "every message read and dropped", func() bool { return src.Stats().Dropped == n })
	if st := src.Stats(); st.Received != n || !st.Connected {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRedisPubSubReconnectsWithBackoff(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	src, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: srv.Addr, Pattern: prefix + "*",
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	run(t, src, s)
	rdb := redistest.Client(t, srv.Addr)
	ctx := context.Background()
	// publishUntil publishes seq until the source has it: Pub/Sub keeps no
	// history, so only messages published while subscribed can arrive.
	publishUntil := func(seq int) {
		wstest.Eventually(t, wait, fmt.Sprintf("message %d delivered", seq), func() bool {
			_ = rdb.Publish(ctx, prefix+"x", msg(seq)).Err()
			time.Sleep(5 * time.Millisecond)
			for _, v := range s.seqs(t) {
				if v == seq {
					return true
				}
			}
			return false
		})
	}
	publishUntil(1)
	if n := srv.KillClients(t, "pubsub"); n != 1 {
		t.Fatalf("killed %d pubsub clients, want 1", n)
	}
	wstest.Eventually(t, wait, "disconnect recorded", func() bool { return src.Stats().LastError != "" })
	publishUntil(2)
	srv.Stop(t)
	wstest.Eventually(t, wait, "disconnected", func() bool { return !src.Stats().Connected })
	srv.Restart(t)
	publishUntil(3)
	if st := src.Stats(); !st.Connected || st.LastError == "" {
		t.Fatalf("stats after recovery = %+v", st)
	}
}

func TestRedisStreamsResumeWithoutGapAfterKillAndRestart(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	keys := []string{prefix + "md-a", prefix + "md-b"}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: 20, MinRetryBackoff: 20 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	next := 1
	add := func(n int) { // alternates between the two streams
		t.Helper()
		for i := 0; i < n; i++ {
			if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys[next%2], Values: []string{"data", msg(next)}}).Err(); err != nil {
				t.Fatalf("XADD %d: %v", next, err)
			}
			next++
		}
	}
	add(10) // before the proxy starts: skipped with start "$"
	src, err := dataflow.NewRedisStreams(configtest.Streams(dataflow.StreamConfig{Addr: srv.Addr, Keys: keys,
		Block: 100 * time.Millisecond, Count: 7, BackoffMin: 150 * time.Millisecond, BackoffMax: 300 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	run(t, src, s)
	wstest.Eventually(t, wait, "connected", func() bool { return src.Stats().Connected })
	add(40) // 11..50
	wstest.Eventually(t, wait, "40 entries", func() bool { return s.len() >= 40 })

	// Network cut: the proxy's connection is killed, entries arrive while it
	// waits out its backoff.
	if n := srv.KillClients(t, "normal"); n < 1 {
		t.Fatal("no proxy connection to kill")
	}
	add(50) // 51..100
	wstest.Eventually(t, wait, "kill recorded", func() bool { return src.Stats().LastError != "" })
	wstest.Eventually(t, wait, "100 entries", func() bool { return s.len() >= 90 })

	// Redis restart: entries written just before the shutdown and just
	// after the restart, while the proxy is disconnected.
	add(20) // 101..120
	srv.Stop(t)
	wstest.Eventually(t, wait, "disconnected", func() bool { return !src.Stats().Connected })
	srv.Restart(t)
	add(30) // 121..150
	wstest.Eventually(t, wait, "150 entries", func() bool { return s.len() >= 140 })
	add(10) // 151..160, live again
	wstest.Eventually(t, wait, "all entries", func() bool { return s.len() >= 150 })

	got := s.seqs(t)
	// Per-stream order is what Redis guarantees; across the two streams
	// XREAD returns them stream by stream, so check each stream's sequence
	// and the union.
	var a, b []int
	for _, v := range got {
		if v%2 == 1 {
			a = append(a, v)
		} else {
			b = append(b, v)
		}
	}
	if len(got) != 150 {
		t.Fatalf("got %d entries, want 150 (11..160): %v", len(got), got)
	}
	for i, v := range a {
		if v != 11+2*i {
			t.Fatalf("stream a: entry %d has seq %d, want %d: %v", i, v, 11+2*i, a)
		}
	}
	for i, v := range b {
		if v != 12+2*i {
			t.Fatalf("stream b: entry %d has seq %d, want %d: %v", i, v, 12+2*i, b)
		}
	}
	ids := src.LastIDs()
	if ids[keys[0]] == "" || ids[keys[1]] == "" {
		t.Fatalf("last IDs = %v", ids)
	}
	if st := src.Stats(); st.Received != 150 || st.Rejected != 0 || !st.Connected {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRedisStreamsCountsMalformedEntries(t *testing.T) {
	addr := redistest.Addr(t)
	key := redistest.Prefix(t) + "md"
	rdb := redistest.Client(t, addr)
	t.Cleanup(func() { rdb.Del(context.Background(), key) })
	ctx := context.Background()
	entries := [][]string{
		{"data", msg(1)},
		{"payload", msg(100)},          // no data field
		{"data", "not json"},           // not JSON
		{"data", `{"exchange":["b"]}`}, // a field of the wrong type
		{"data", msg(2)},
		{"data", msg(3), "other", "x"}, // extra fields are fine
	}
	for _, e := range entries {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: e}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// start "0": the whole history.
	src, err := dataflow.NewRedisStreams(configtest.Streams(dataflow.StreamConfig{Addr: addr, Keys: []string{key}, Start: "0", Block: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	run(t, src, s)
	wstest.Eventually(t, wait, "3 valid entries", func() bool { return s.len() >= 3 })
	wstest.Eventually(t, wait, "3 rejections", func() bool { return src.Stats().Rejected == 3 })
	wantSeqs(t, s.seqs(t), 1, 3)
	if st := src.Stats(); st.Received != 3 || !strings.Contains(st.LastReject, "entry") {
		t.Fatalf("stats = %+v", st)
	}
}

func TestSourceConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		make func() error
	}{
		{"pubsub bad addr", func() error {
			_, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: "nohost"}))
			return err
		}},
		{"streams bad start", func() error {
			_, err := dataflow.NewRedisStreams(configtest.Streams(dataflow.StreamConfig{Start: "latest"}))
			return err
		}},
		{"streams empty key", func() error {
			_, err := dataflow.NewRedisStreams(configtest.Streams(dataflow.StreamConfig{Keys: []string{"a", ""}}))
			return err
		}},
		{"ingest body too large", func() error {
			_, err := dataflow.NewIngest(configtest.Ingest(dataflow.IngestConfig{MaxBodyBytes: dataflow.MaxIngestBody + 1}))
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.make(); err == nil || !strings.Contains(err.Error(), "invalid source configuration") {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	b := dataflow.Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, w := range want {
		w *= time.Millisecond
		d := b.Next()
		if d < w/2 || d > w {
			t.Fatalf("attempt %d: %s not in [%s, %s]", i, d, w/2, w)
		}
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after Reset: %s", d)
	}
	// The configuration's delays (the sources apply no defaults of their own).
	r := configtest.Sources().Redis
	def := dataflow.Backoff{Min: r.BackoffMin, Max: r.BackoffMax}
	if d := def.Next(); d < 50*time.Millisecond || d > 100*time.Millisecond {
		t.Fatalf("default first delay %s", d)
	}
}
