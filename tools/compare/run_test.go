package compare_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/proxy"
	"wsproxy/tools/compare"
	"wsproxy/tools/legacy"
)

const wait = 10 * time.Second

// Feed is one upstream feeding both servers: Legacy and Proxy are the
// sources each server runs (two subscribers of the same Redis channel, or
// two in-process channels fed by one publisher); Start begins publishing
// once both sources are attached and runs until ctx ends.
type Feed struct {
	Legacy, Proxy dataflow.Source
	Start         func(ctx context.Context)
}

// inProcessFeed publishes synthetic market data of every type to two
// in-process channels at once: the same message, the same bytes.
func inProcessFeed(t testing.TB) Feed {
	t.Helper()
	l, p := dataflow.NewInProcess("legacy"), dataflow.NewInProcess("proxy")
	return Feed{Legacy: l, Proxy: p, Start: func(ctx context.Context) {
		wstest.Eventually(t, wait, "sources attached", func() bool { return l.Status().Connected && p.Status().Connected })
		go publish(ctx, func(md dataflow.MarketData) {
			_ = l.Output(ctx, md) // a closed channel at the end of a test is fine
			_ = p.Output(ctx, md)
		})
	}}
}

// publish emits one message every 2ms until ctx ends, cycling through
// symbols and types; data carries a sequence number "seq" that tests use to
// find messages.
func publish(ctx context.Context, emit func(dataflow.MarketData)) {
	symbols := []string{"BTC/USDT", "ETH/USDT", "SOL/USDT"}
	types := []string{"trade", "trade", "ticker", "depth", "kline_1m"}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		md := dataflow.MarketData{
			Exchange:  "binance",
			Symbol:    symbols[seq%len(symbols)],
			Type:      types[seq%len(types)],
			Timestamp: time.Now().UnixMilli(),
			Data:      []byte(fmt.Sprintf(`{"seq":%d,"price":"%d.5","qty":"0.1"}`, seq, 50000+seq)),
		}
		emit(md)
	}
}

// tamper wraps a source and changes what it delivers: mutate returns false
// to drop a message. It stands for a proxy that loses or alters data.
type tamper struct {
	dataflow.Source
	mutate func(md *dataflow.MarketData) bool
}

func (t tamper) Run(ctx context.Context, sink dataflow.Sink) error {
	return t.Source.Run(ctx, tamperSink{sink, t.mutate})
}

type tamperSink struct {
	dataflow.Sink
	mutate func(md *dataflow.MarketData) bool
}

func (s tamperSink) Deliver(md *dataflow.MarketData) bool {
	if !s.mutate(md) {
		return true
	}
	return s.Sink.Deliver(md)
}

// servers starts the legacy reference and wsproxy on loopback, fed by f.
func servers(t testing.TB, f Feed, wrapProxy func(dataflow.Source) dataflow.Source) (legacyURL, proxyURL string) {
	t.Helper()
	lsrv, err := legacy.New(legacy.Config{}, zerolog.Nop(), f.Legacy)
	if err != nil {
		t.Fatal(err)
	}
	lln := listen(t)
	if err := lsrv.Serve(lln); err != nil {
		t.Fatal(err)
	}
	psrc := f.Proxy
	if wrapProxy != nil {
		psrc = wrapProxy(psrc)
	}
	psrv, err := proxy.New(roomyProxy(), zerolog.Nop(), psrc)
	if err != nil {
		t.Fatal(err)
	}
	pln := listen(t)
	psrv.Serve(pln)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), wait)
		defer scancel()
		_ = psrv.Shutdown(sctx)
		_ = lsrv.Shutdown(sctx)
	})
	f.Start(ctx)
	return "ws://" + lln.Addr().String() + "/ws", "ws://" + pln.Addr().String() + "/ws"
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Grace ends as soon as every in-window message has its counterpart: runs
// that expect parity give a slow side (a busy machine, the race detector)
// long to catch up at no cost; runs that expect messages missing wait the
// short one in full.
const (
	parityGrace  = 20 * time.Second
	missingGrace = 1500 * time.Millisecond
)

func runCompare(t testing.TB, legacyURL, proxyURL, subscribe string, count int, grace time.Duration) *compare.Report {
	t.Helper()
	sub, err := compare.ParseSubscription(subscribe)
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	r, err := compare.Run(context.Background(), compare.Config{
		LegacyURL: legacyURL, ProxyURL: proxyURL, Subscribe: sub,
		Count: count, MaxDuration: 30 * time.Second,
		WarmUp: 100 * time.Millisecond, Grace: grace,
		Progress: &progress, ProgressInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "compare done") {
		t.Fatalf("no final progress line: %q", progress.String())
	}
	return r
}

func report(r *compare.Report) string {
	var b strings.Builder
	_ = r.WriteText(&b)
	return b.String()
}

// ParityFeeds lists the upstreams the parity tests run against. A shared
// Redis channel is added beside the in-process feed when the Redis sources
// are available.
var parityFeeds = map[string]func(testing.TB) Feed{
	"in-process": inProcessFeed,
}

// TestParityLegacyVsProxy: fed by the same upstream, wsproxy and the legacy
// reference deliver the same messages, for every subscription form.
func TestParityLegacyVsProxy(t *testing.T) {
	for feedName, newFeed := range parityFeeds {
		for _, sub := range []string{"none", "channel", `{"symbols":["BTC/USDT","eth-usdt"],"dataTypes":["trade","kline"]}`} {
			t.Run(feedName+"/"+sub, func(t *testing.T) {
				lu, pu := servers(t, newFeed(t), nil)
				r := runCompare(t, lu, pu, sub, 300, parityGrace)
				if !r.Pass || r.Parity != 100 || r.Matched < 250 || r.Skew.Samples != r.Matched {
					t.Fatalf("want 100%% parity:\n%s", report(r))
				}
				if len(r.Types) < 2 {
					t.Fatalf("types %v", r.Types)
				}
				// Control frames were compared field by field and agree.
				seen := map[string]bool{}
				for _, c := range r.Control {
					seen[c.Type] = c.Legacy > 0 && c.Proxy > 0
				}
				if r.ControlDiffs != 0 || !seen["welcome"] || !seen["pong"] || !seen["error"] || (sub == "channel" && !seen["subscribed"]) {
					t.Fatalf("control frames not compared or differing:\n%s", report(r))
				}
				if sub[0] == '{' && (r.Legacy.OutsideFilter == 0 || r.Proxy.OutsideFilter != 0 || r.Types["ticker"].Legacy != 0) {
					t.Fatalf("filter not applied as expected:\n%s", report(r))
				}
			})
		}
	}
}

// TestControlDifferencesDetected: with the two servers in each other's seat,
// the control frames differ (wsproxy's welcome has proxyVersion and its
// error a code, which the legacy server lacks), and the run fails naming
// the fields, although the data agree.
func TestControlDifferencesDetected(t *testing.T) {
	lu, pu := servers(t, inProcessFeed(t), nil)
	r := runCompare(t, pu, lu, "none", 200, parityGrace)
	if r.Pass || r.ControlDiffs != 2 || r.Parity != 100 {
		t.Fatalf("want exactly the welcome and error to differ, data at 100%%:\n%s", report(r))
	}
	text := report(r)
	for _, want := range []string{"payload.proxyVersion: only in legacy", "payload.code: only in legacy"} {
		if !strings.Contains(text, want) {
			t.Fatalf("report does not name %q:\n%s", want, text)
		}
	}
}

// TestInjectedDifferencesDetected: a proxy that drops one kind of message
// and alters another fails the comparison, which names them.
func TestInjectedDifferencesDetected(t *testing.T) {
	var dropped, changed atomic.Int64
	wrap := func(src dataflow.Source) dataflow.Source {
		return tamper{Source: src, mutate: func(md *dataflow.MarketData) bool {
			var seq int
			fmt.Sscanf(string(md.Data), `{"seq":%d`, &seq)
			switch seq % 40 {
			case 7:
				dropped.Add(1)
				return false
			case 23:
				changed.Add(1)
				md.Data = []byte(strings.Replace(string(md.Data), `"qty":"0.1"`, `"qty":"0.2"`, 1))
			}
			return true
		}}
	}
	lu, pu := servers(t, inProcessFeed(t), wrap)
	r := runCompare(t, lu, pu, "none", 300, missingGrace)
	if r.Pass || r.Parity >= 100 || r.MissingInProxy == 0 || r.Differing == 0 || r.MissingInLegacy != 0 {
		t.Fatalf("differences not reported:\n%s", report(r))
	}
	for _, s := range r.MissingInProxySamples {
		if !strings.Contains(string(s.Payload), `"seq":`) || seqOf(t, s.Payload)%40 != 7 {
			t.Fatalf("unexpected missing message %s", s.Payload)
		}
	}
	for _, d := range r.Diffs {
		if len(d.Fields) != 1 || d.Fields[0] != `data.qty: legacy "0.1" proxy "0.2"` || seqOf(t, d.Legacy)%40 != 23 {
			t.Fatalf("unexpected diff %+v", d)
		}
	}
	if want := 100 * float64(r.Matched) / float64(r.Matched+r.MissingInProxy+r.Differing); r.Parity != want {
		t.Fatalf("parity %g, want %g", r.Parity, want)
	}
}

func seqOf(t testing.TB, payload []byte) int {
	t.Helper()
	i := strings.Index(string(payload), `"seq":`)
	var seq int
	if _, err := fmt.Sscanf(string(payload[i+len(`"seq":`):]), "%d", &seq); err != nil {
		t.Fatalf("no seq in %s", payload)
	}
	return seq
}

// TestFilterNotAcknowledgedDetected: compared with a filter, a server in the
// proxy's seat that does not answer the filter subscription (here the
// legacy reference, which ignores filters as the deployed server did) is
// reported not ready rather than compared.
func TestFilterNotAcknowledgedDetected(t *testing.T) {
	f := inProcessFeed(t)
	lu, _ := servers(t, f, nil)
	sub, err := compare.ParseSubscription(`{"dataTypes":["trade"]}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = compare.Run(context.Background(), compare.Config{
		LegacyURL: lu, ProxyURL: lu, Subscribe: sub, Count: 10, MaxDuration: 5 * time.Second,
		ReadyTimeout: 2 * time.Second,
	})
	if !errors.Is(err, compare.ErrNotReady) || !strings.Contains(err.Error(), "proxy") {
		t.Fatalf("err = %v, want the proxy side not ready", err)
	}
}

func TestRunErrors(t *testing.T) {
	f := inProcessFeed(t)
	lu, pu := servers(t, f, nil)
	dead := "ws://" + listenClosed(t) + "/ws"
	tests := []struct {
		name string
		cfg  compare.Config
		want error
	}{
		{"bad URL", compare.Config{LegacyURL: "http://x", ProxyURL: pu}, compare.ErrConfig},
		{"negative count", compare.Config{LegacyURL: lu, ProxyURL: pu, Count: -1}, compare.ErrConfig},
		{"unreachable", compare.Config{LegacyURL: dead, ProxyURL: pu, ReadyTimeout: 2 * time.Second}, compare.ErrNotReady},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := compare.Run(context.Background(), tc.cfg)
			if !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("err = %v, report %v; want %v", err, r, tc.want)
			}
		})
	}
}

// listenClosed returns an address nothing listens on.
func listenClosed(t testing.TB) string {
	t.Helper()
	ln := listen(t)
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestConnectionLostIsAProblem: a server going away mid-run fails the report.
func TestConnectionLostIsAProblem(t *testing.T) {
	f := inProcessFeed(t)
	lsrv, err := legacy.New(legacy.Config{}, zerolog.Nop(), f.Legacy)
	if err != nil {
		t.Fatal(err)
	}
	lln := listen(t)
	if err := lsrv.Serve(lln); err != nil {
		t.Fatal(err)
	}
	_, pu := servers(t, Feed{Legacy: dataflow.NewInProcess("unused"), Proxy: f.Proxy, Start: f.Start}, nil)
	// Stop the legacy server once the window is running (the first
	// progress line is written after both clients are ready).
	stop := &onWrite{fn: func() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_ = lsrv.Shutdown(ctx)
		}()
	}}
	sub, _ := compare.ParseSubscription("none")
	r, err := compare.Run(context.Background(), compare.Config{
		LegacyURL: "ws://" + lln.Addr().String() + "/ws", ProxyURL: pu, Subscribe: sub,
		Duration: 20 * time.Second, WarmUp: -1, Progress: stop, ProgressInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Pass || len(r.Problems) == 0 || !strings.Contains(r.Problems[0], "legacy connection lost") {
		t.Fatalf("lost connection not reported:\n%s", report(r))
	}
}

// onWrite calls fn on the first Write.
type onWrite struct {
	once sync.Once
	fn   func()
}

func (w *onWrite) Write(b []byte) (int, error) {
	w.once.Do(w.fn)
	return len(b), nil
}

// TestRejectedSubscription: a server refusing the subscription (here a
// wsproxy with a one-symbol limit) stops the run before it starts.
func TestRejectedSubscription(t *testing.T) {
	f := inProcessFeed(t)
	lu, _ := servers(t, f, nil)
	cfg := config.Config{}
	cfg.Limits.MaxSymbols = 1
	psrv, err := proxy.New(cfg, zerolog.Nop(), dataflow.NewInProcess("idle"))
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	psrv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = psrv.Shutdown(ctx)
	})
	sub, err := compare.ParseSubscription(`{"symbols":["BTC/USDT","ETH/USDT"]}`)
	if err != nil {
		t.Fatal(err)
	}
	r, err := compare.Run(context.Background(), compare.Config{
		LegacyURL: lu, ProxyURL: "ws://" + ln.Addr().String() + "/ws", Subscribe: sub, ReadyTimeout: wait,
	})
	if !errors.Is(err, compare.ErrNotReady) || !strings.Contains(err.Error(), "LIMIT_EXCEEDED") || r != nil {
		t.Fatalf("err = %v", err)
	}
}

// roomyProxy is wsproxy's configuration with queues deep enough that a test
// client stalled by a busy machine loses nothing: these tests compare
// delivery, not shedding (which the legacy server did not do).
func roomyProxy() config.Config {
	var cfg config.Config
	cfg.Queue.MaxMessages = 20000
	cfg.Queue.MaxBytes = 32 << 20
	return cfg
}
