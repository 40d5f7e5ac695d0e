package dataflow_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"wsproxy/dataflow"
	"wsproxy/internal/configtest"
	"wsproxy/internal/natstest"
	"wsproxy/internal/wstest"
)

// gateSink delivers the first n messages, then blocks every Deliver until
// open is called (a proxy that stalls).
type gateSink struct {
	sink
	n    int
	gate chan struct{}
	once sync.Once
	// blocked is closed when a Deliver first waits on the gate.
	blocked  chan struct{}
	blockOne sync.Once
}

func newGateSink(n int) *gateSink {
	return &gateSink{n: n, gate: make(chan struct{}), blocked: make(chan struct{})}
}

func (g *gateSink) Deliver(md *dataflow.MarketData) bool {
	if g.len() >= g.n {
		select {
		case <-g.gate:
		default:
			g.blockOne.Do(func() { close(g.blocked) })
			<-g.gate
		}
	}
	return g.sink.Deliver(md)
}

func (g *gateSink) open() { g.once.Do(func() { close(g.gate) }) }

func natsPublish(t testing.TB, nc *nats.Conn, subj string, body string) {
	t.Helper()
	if err := nc.Publish(subj, []byte(body)); err != nil {
		t.Fatalf("publish %s: %v", subj, err)
	}
}

func TestNATSDeliversAndCountsBadMessages(t *testing.T) {
	srv := natstest.Start(t)
	src, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{URL: srv.URL}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	run(t, src, s)
	wstest.Eventually(t, wait, "subscribed", func() bool { return src.Stats().Connected })
	nc := srv.Conn(t)
	bad := []string{
		`not json`,
		`{"symbol":7,"type":"trade","timestamp":1,"data":{}}`,
		`[1,2]`,
		``,
	}
	for i := 1; i <= 50; i++ {
		if i%10 == 0 {
			natsPublish(t, nc, "market-data.trade.binance", bad[(i/10)%len(bad)])
		}
		natsPublish(t, nc, "market-data.trade.binance", msg(i))
	}
	natsPublish(t, nc, "other.trade.binance", msg(99)) // outside market-data.>
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, wait, "50 messages", func() bool { return s.len() >= 50 })
	wstest.Eventually(t, wait, "5 rejections", func() bool { return src.Stats().Rejected == 5 })
	wantSeqs(t, s.seqs(t), 1, 50)
	st := src.Stats()
	if st.Received != 50 || st.Dropped != 0 || !strings.Contains(st.LastReject, "market-data.trade.binance") ||
		st.LastError != "" || st.Type != "nats" || st.Name != "nats" {
		t.Fatalf("stats = %+v", st)
	}
	if s.got[0].ReceivedAt == 0 {
		t.Fatal("receivedAt not stamped")
	}
}

// TestNATSReadPathNeverBlocks: a proxy that takes nothing is counted as
// drops while the source keeps reading; a proxy that stalls makes the
// library's bounded buffer overflow, which is counted as slow-consumer
// events and drops, and the source goes on once the proxy is back.
func TestNATSReadPathNeverBlocks(t *testing.T) {
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	t.Run("full", func(t *testing.T) {
		src, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{URL: srv.URL, Subjects: []string{"full.>"}}))
		if err != nil {
			t.Fatal(err)
		}
		run(t, src, &sink{full: true})
		wstest.Eventually(t, wait, "subscribed", func() bool { return src.Stats().Connected })
		const n = 2000
		for i := 1; i <= n; i++ {
			natsPublish(t, nc, "full.trade.binance", msg(i))
		}
		wstest.Eventually(t, wait, "every message read and dropped", func() bool { return src.Stats().Dropped == n })
		if st := src.Stats(); st.Received != n || !st.Connected || st.SlowConsumer != 0 {
			t.Fatalf("stats = %+v", st)
		}
	})
	t.Run("stalled", func(t *testing.T) {
		src, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{URL: srv.URL, Subjects: []string{"stall.>"}, PendingMessages: 10}))
		if err != nil {
			t.Fatal(err)
		}
		s := newGateSink(5)
		run(t, src, s)
		t.Cleanup(s.open)
		wstest.Eventually(t, wait, "subscribed", func() bool { return src.Stats().Connected })
		const n = 200
		for i := 1; i <= n; i++ {
			natsPublish(t, nc, "stall.trade.binance", msg(i))
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		<-s.blocked
		wstest.Eventually(t, wait, "slow consumer counted", func() bool { return src.Stats().SlowConsumer >= 1 })
		s.open()
		wstest.Eventually(t, wait, "all accounted for", func() bool {
			st := src.Stats()
			return st.Received+st.Dropped == n
		})
		st := src.Stats()
		if st.Dropped == 0 || st.Received < 6 || !st.Connected {
			t.Fatalf("stats = %+v", st)
		}
		// What arrived is in order, the dropped ones missing.
		got := s.seqs(t)
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("out of order: %v", got)
			}
		}
	})
}

func TestNATSReconnectsAfterRestart(t *testing.T) {
	srv := natstest.Start(t)
	src, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{URL: srv.URL,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	run(t, src, s)
	nc := srv.Conn(t)
	// publishUntil publishes seq until the source has it: core NATS keeps
	// no history, so only messages published while subscribed arrive.
	publishUntil := func(seq int) {
		wstest.Eventually(t, wait, fmt.Sprintf("message %d delivered", seq), func() bool {
			_ = nc.Publish("market-data.trade.binance", []byte(msg(seq)))
			_ = nc.FlushTimeout(100 * time.Millisecond)
			for _, v := range s.seqs(t) {
				if v == seq {
					return true
				}
			}
			return false
		})
	}
	publishUntil(1)
	srv.Kill9(t)
	wstest.Eventually(t, wait, "disconnected", func() bool { st := src.Stats(); return !st.Connected && st.LastError != "" })
	srv.Restart(t)
	wstest.Eventually(t, wait, "reconnected", func() bool { return src.Stats().Connected })
	publishUntil(2)
	srv.Kill9(t)
	wstest.Eventually(t, wait, "disconnected again", func() bool { return !src.Stats().Connected })
	srv.Restart(t)
	publishUntil(3)
	if st := src.Stats(); !st.Connected || !strings.Contains(st.LastError, "nats") {
		t.Fatalf("stats after recovery = %+v", st)
	}
}

// jsSetup starts a server with a stream MD over md.> and returns it.
func jsSetup(t testing.TB, cfg jetstream.StreamConfig) (*natstest.Server, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	if cfg.Name == "" {
		cfg.Name = "MD"
	}
	if len(cfg.Subjects) == 0 {
		cfg.Subjects = []string{"md.>"}
	}
	cfg.Storage = jetstream.FileStorage
	natstest.CreateStream(t, js, cfg)
	return srv, js
}

// TestJetStreamResumeAfterKill9AndCut: the server is killed with SIGKILL in
// the middle of a stream and restarted on the same store, then the source's
// connection is cut; messages stored before, during and after each outage
// all arrive, once each, in order.
func TestJetStreamResumeAfterKill9AndCut(t *testing.T) {
	srv, js := jsSetup(t, jetstream.StreamConfig{})
	relay := natstest.NewRelay(t, srv.URL)
	next := 1
	publish := func(n int) {
		t.Helper()
		for range n {
			subj := []string{"md.trade.binance", "md.ticker.okx"}[next%2]
			natstest.Publish(t, js, subj, fmt.Sprint("m", next), []byte(msg(next)))
			next++
		}
	}
	publish(10) // before the source starts: skipped with start "new"
	src, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{URL: relay.URL, Stream: "MD", BatchSize: 16,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	s := newGateSink(50)
	run(t, src, s)
	t.Cleanup(s.open)
	wstest.Eventually(t, wait, "connected", func() bool { return src.Stats().Connected })
	publish(300) // 11..310

	// Mid-stream: the proxy has taken 50 of 300 when the server dies.
	<-s.blocked
	srv.Kill9(t)
	s.open()
	wstest.Eventually(t, wait, "kill noticed", func() bool { return !src.Stats().Connected })
	srv.Restart(t)
	publish(50) // 311..360, while the source may still be reconnecting
	// A restarted nats-server and the source's reconnection take longer
	// than wait on a loaded machine: a longer deadline, the same condition.
	wstest.Eventually(t, 3*wait, "310 delivered", func() bool { return s.len() >= 300 })

	// Network cut: messages stored while the source cannot reach the server.
	relay.SetDown(true)
	relay.Cut()
	wstest.Eventually(t, wait, "cut noticed", func() bool { return !src.Stats().Connected })
	publish(40) // 361..400
	relay.SetDown(false)
	wstest.Eventually(t, 3*wait, "reconnected", func() bool { return src.Stats().Connected })
	publish(10) // 401..410
	wstest.Eventually(t, 3*wait, "every message", func() bool { return s.len() >= 400 })
	wantSeqs(t, s.seqs(t), 11, 410)
	st := src.Stats()
	if st.Received != 400 || st.Gaps != 0 || st.Rejected != 0 || st.Sequence != 410 || src.Sequence() != 410 || st.LastError == "" {
		t.Fatalf("stats = %+v", st)
	}
	if extra := s.len(); extra != 400 {
		t.Fatalf("%d messages, want 400", extra)
	}
}

// TestJetStreamTrimmedGapReported: while the source is cut off, the stream
// (limited to 20 messages) drops messages it never read; the gap is counted
// and logged once with its sequence range, and reading goes on after it.
func TestJetStreamTrimmedGapReported(t *testing.T) {
	srv, js := jsSetup(t, jetstream.StreamConfig{MaxMsgs: 20})
	relay := natstest.NewRelay(t, srv.URL)
	var logs syncBuffer
	src, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{URL: relay.URL, Stream: "MD", Start: "first",
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	src.SetLogger(zerolog.New(&logs))
	s := &sink{}
	run(t, src, s)
	for i := 1; i <= 10; i++ {
		natstest.Publish(t, js, "md.trade.binance", fmt.Sprint(i), []byte(msg(i)))
	}
	wstest.Eventually(t, wait, "10 delivered", func() bool { return s.len() == 10 })
	relay.SetDown(true)
	relay.Cut()
	wstest.Eventually(t, wait, "cut noticed", func() bool { return !src.Stats().Connected })
	for i := 11; i <= 60; i++ { // the stream keeps 41..60
		natstest.Publish(t, js, "md.trade.binance", fmt.Sprint(i), []byte(msg(i)))
	}
	relay.SetDown(false)
	wstest.Eventually(t, wait, "resumed after the gap", func() bool { return s.len() == 30 })
	got := s.seqs(t)
	wantSeqs(t, got[:10], 1, 10)
	wantSeqs(t, got[10:], 41, 60)
	st := src.Stats()
	if st.Gaps != 1 || !strings.Contains(st.LastGap, "sequences 11..40") {
		t.Fatalf("stats = %+v", st)
	}
	if n := strings.Count(logs.String(), "jetstream gap"); n != 1 ||
		!strings.Contains(logs.String(), `"from_sequence":11,"to_sequence":40`) {
		t.Fatalf("%d gap log lines:\n%s", n, logs.String())
	}

	// A message deleted from the middle of what the source has not read yet
	// is a gap too.
	relay.SetDown(true)
	relay.Cut()
	wstest.Eventually(t, wait, "second cut noticed", func() bool { return !src.Stats().Connected })
	for i := 61; i <= 70; i++ {
		natstest.Publish(t, js, "md.trade.binance", fmt.Sprint(i), []byte(msg(i)))
	}
	stream, err := js.Stream(context.Background(), "MD")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(context.Background(), 65); err != nil {
		t.Fatal(err)
	}
	relay.SetDown(false)
	wstest.Eventually(t, wait, "resumed after the deleted message", func() bool { return s.len() == 39 })
	got = s.seqs(t)
	wantSeqs(t, got[30:34], 61, 64)
	wantSeqs(t, got[34:], 66, 70)
	if st := src.Stats(); st.Gaps != 2 || !strings.Contains(st.LastGap, "sequences 65..65") {
		t.Fatalf("stats = %+v", st)
	}
	if n := strings.Count(logs.String(), "jetstream gap"); n != 2 {
		t.Fatalf("%d gap log lines:\n%s", n, logs.String())
	}
}

// TestJetStreamStreamRecreated: a stream deleted and created again (its
// sequences start over) while the source is cut off is read from its first
// message, not from the old position.
func TestJetStreamStreamRecreated(t *testing.T) {
	srv, js := jsSetup(t, jetstream.StreamConfig{})
	relay := natstest.NewRelay(t, srv.URL)
	src, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{URL: relay.URL, Stream: "MD",
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	run(t, src, s)
	wstest.Eventually(t, wait, "connected", func() bool { return src.Stats().Connected })
	for i := 1; i <= 30; i++ {
		natstest.Publish(t, js, "md.trade.binance", fmt.Sprint(i), []byte(msg(i)))
	}
	wstest.Eventually(t, wait, "30 delivered", func() bool { return s.len() == 30 })
	relay.SetDown(true)
	relay.Cut()
	wstest.Eventually(t, wait, "cut noticed", func() bool { return !src.Stats().Connected })
	if err := js.DeleteStream(context.Background(), "MD"); err != nil {
		t.Fatal(err)
	}
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: "MD", Subjects: []string{"md.>"}, Storage: jetstream.FileStorage})
	for i := 31; i <= 40; i++ { // sequences 1..10 of the new stream
		natstest.Publish(t, js, "md.trade.binance", fmt.Sprint(i), []byte(msg(i)))
	}
	relay.SetDown(false)
	wstest.Eventually(t, wait, "the new stream's messages", func() bool { return s.len() == 40 })
	natstest.Publish(t, js, "md.trade.binance", "41", []byte(msg(41)))
	wstest.Eventually(t, wait, "live again", func() bool { return s.len() == 41 })
	wantSeqs(t, s.seqs(t), 1, 41)
	if st := src.Stats(); st.Sequence != 11 || st.Gaps != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestNATSSourcesNoticeSilentNetworkLoss: the network between the proxy and
// the server silently loses everything (no connection is closed); pings
// (both sources) and pull heartbeats (JetStream) notice, the sources
// reconnect once the network is back, and JetStream loses nothing stored
// meanwhile.
func TestNATSSourcesNoticeSilentNetworkLoss(t *testing.T) {
	srv, js := jsSetup(t, jetstream.StreamConfig{})
	relay := natstest.NewRelay(t, srv.URL)
	core, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{URL: relay.URL, Subjects: []string{"core.>"},
		PingInterval: 200 * time.Millisecond, ConnectTimeout: 500 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	jsrc, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{URL: relay.URL, Stream: "MD",
		Heartbeat: 500 * time.Millisecond, PingInterval: time.Minute, ConnectTimeout: 500 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	cs, jsink := &sink{}, &sink{}
	run(t, core, cs)
	run(t, jsrc, jsink)
	wstest.Eventually(t, wait, "connected", func() bool { return core.Stats().Connected && jsrc.Stats().Connected })
	for i := 1; i <= 10; i++ {
		natstest.Publish(t, js, "md.trade.binance", fmt.Sprint(i), []byte(msg(i)))
	}
	wstest.Eventually(t, wait, "10 delivered", func() bool { return jsink.len() == 10 })
	relay.Stall(true)
	for i := 11; i <= 20; i++ {
		natstest.Publish(t, js, "md.trade.binance", fmt.Sprint(i), []byte(msg(i)))
	}
	wstest.Eventually(t, wait, "silent loss noticed", func() bool { return !core.Stats().Connected && !jsrc.Stats().Connected })
	relay.Cut() // the held connections are gone for good
	relay.Stall(false)
	wstest.Eventually(t, wait, "reconnected", func() bool { return core.Stats().Connected && jsrc.Stats().Connected })
	natstest.Publish(t, js, "md.trade.binance", "21", []byte(msg(21)))
	wstest.Eventually(t, wait, "21 delivered", func() bool { return jsink.len() == 21 })
	wantSeqs(t, jsink.seqs(t), 1, 21)
	nc := srv.Conn(t)
	wstest.Eventually(t, wait, "core NATS delivers again", func() bool {
		_ = nc.Publish("core.trade.binance", []byte(msg(1)))
		_ = nc.FlushTimeout(100 * time.Millisecond)
		return cs.len() > 0
	})
	if st := jsrc.Stats(); st.LastError == "" || st.Gaps != 0 {
		t.Fatalf("jetstream stats = %+v", st)
	}
}

// TestJetStreamMissingStream: a stream that does not exist (yet) is a
// source error naming it, retried until the collector creates the stream.
func TestJetStreamMissingStream(t *testing.T) {
	srv := natstest.Start(t)
	src, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{URL: srv.URL, Stream: "LATER", Start: "first",
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	run(t, src, s)
	wstest.Eventually(t, wait, "error naming the stream", func() bool {
		st := src.Stats()
		return !st.Connected && strings.Contains(st.LastError, "stream LATER") && strings.Contains(st.LastError, "not found")
	})
	js := srv.JetStream(t)
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: "LATER", Subjects: []string{"later.>"}})
	natstest.Publish(t, js, "later.trade.binance", "1", []byte(msg(1)))
	wstest.Eventually(t, wait, "delivered once the stream exists", func() bool { return s.len() == 1 })
	if !src.Stats().Connected {
		t.Fatalf("stats = %+v", src.Stats())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestJetStreamStartPositions: new, first, a sequence and a time, with and
// without a subject filter; malformed messages are counted and skipped.
func TestJetStreamStartPositions(t *testing.T) {
	srv, js := jsSetup(t, jetstream.StreamConfig{})
	for i := 1; i <= 10; i++ {
		subj := "md.trade.binance"
		if i%2 == 0 {
			subj = "md.ticker.okx"
		}
		natstest.Publish(t, js, subj, fmt.Sprint(i), []byte(msg(i)))
	}
	natstest.Publish(t, js, "md.trade.binance", "bad", []byte(`["not an object"]`)) // sequence 11
	st, err := js.Stream(context.Background(), "MD")
	if err != nil {
		t.Fatal(err)
	}
	m7, err := st.GetMsg(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		start    string
		subjects []string
		want     []int // before the extra messages
	}{
		{"first", "first", nil, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"sequence", "5", nil, []int{5, 6, 7, 8, 9, 10}},
		{"time", m7.Time.Format(time.RFC3339Nano), nil, []int{7, 8, 9, 10}},
		{"first filtered", "first", []string{"md.trade.>"}, []int{1, 3, 5, 7, 9}},
		{"new", "new", nil, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{URL: srv.URL, Stream: "MD", Start: tc.start, Subjects: tc.subjects}))
			if err != nil {
				t.Fatal(err)
			}
			s := &sink{}
			run(t, src, s)
			wstest.Eventually(t, wait, "connected", func() bool { return src.Stats().Connected })
			// One more message per case; each case also reads the earlier
			// cases' (stored before it started), except "new".
			natstest.Publish(t, js, "md.trade.binance", fmt.Sprint("extra", i), []byte(msg(100+i)))
			want := tc.want
			for k := 0; k <= i; k++ {
				if tc.start != "new" || k == i {
					want = append(want, 100+k)
				}
			}
			wstest.Eventually(t, wait, fmt.Sprintf("%d messages", len(want)), func() bool { return s.len() >= len(want) })
			if tc.start != "new" {
				wstest.Eventually(t, wait, "bad message rejected", func() bool { return src.Stats().Rejected == 1 })
			}
			if got := s.seqs(t); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			if st := src.Stats(); st.Gaps != 0 || st.Sequence == 0 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

func TestNATSSourceConfigErrors(t *testing.T) {
	tests := []struct {
		name, want string
		make       func() error
	}{
		{"nats bad url", "sources.nats.url", func() error {
			_, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{URL: "http://x:1"}))
			return err
		}},
		{"nats no host", "sources.nats.url", func() error {
			_, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{URL: "nohost"}))
			return err
		}},
		{"nats overlapping subjects", "overlap", func() error {
			_, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{Subjects: []string{"market-data.>", "market-data.trade.*"}}))
			return err
		}},
		{"nats bad subject", "sources.nats.subjects", func() error {
			_, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{Subjects: []string{"a.>.b"}}))
			return err
		}},
		{"jetstream bad start", "sources.jetstream.start", func() error {
			_, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{Start: "latest"}))
			return err
		}},
		{"jetstream zero sequence", "sources.jetstream.start", func() error {
			_, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{Start: "0"}))
			return err
		}},
		{"jetstream heartbeat too short", "sources.jetstream.heartbeat", func() error {
			_, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{Heartbeat: 100 * time.Millisecond}))
			return err
		}},
		{"jetstream bad stream", "sources.jetstream.stream", func() error {
			_, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{Stream: "market.data"}))
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.make()
			if err == nil || !strings.Contains(err.Error(), "invalid source configuration") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{Subjects: []string{"market-data.trade.*", "market-data.ticker.*"}})); err != nil {
		t.Fatalf("disjoint subjects: %v", err)
	}
}
