package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
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

// TestLegacySubcommand: `wsproxy legacy` serves the legacy behaviour from
// the shipped configuration's sources (the demo feed).
func TestLegacySubcommand(t *testing.T) {
	p := startProc(t, nil, "legacy")
	c := wstest.Dial(t, p.url("/ws"))
	if m := c.Next(t, 5*time.Second); m.Type != "welcome" {
		t.Fatalf("first frame %s", m.Raw)
	}
	// Ignored without a reply, as the deployed legacy server did: the ping
	// after it is answered first, and data keeps coming.
	c.Send(t, `{"type":"subscribe","payload":{"exchange":["nowhere"]}}`)
	c.Send(t, `{"type":"ping","probe":1}`)
	for {
		m := c.Next(t, 5*time.Second)
		if m.Type == "pong" {
			break
		}
		if m.Type == "subscribed" {
			t.Fatalf("filter subscribe answered %s, want nothing", m.Raw)
		}
	}
	m := c.NextOfType(t, "trade", 10*time.Second)
	if m.Str("payload", "exchange") != "demo" || m.Payload["data"] == nil || m.Fields["timestamp"] == nil {
		t.Fatalf("data frame %s", m.Raw)
	}
	c.Send(t, `{"type":"ping","timestamp":"2024-08-09T08:00:00.000Z"}`)
	c.NextOfType(t, "pong", 5*time.Second)
	if err := p.stop(t, 15*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.Logs())
	}
}

// sharedFeed runs the legacy reference and wsproxy in this process, both
// fed by one publisher; drop (when set) removes messages on the way to
// wsproxy only.
func sharedFeed(t testing.TB, drop func(seq int) bool) (legacyURL, proxyURL string) {
	t.Helper()
	lin, pin := dataflow.NewInProcess("legacy"), dataflow.NewInProcess("proxy")
	lsrv, err := legacy.New(legacy.Config{}, zerolog.Nop(), lin)
	if err != nil {
		t.Fatal(err)
	}
	psrv, err := proxy.New(roomyProxy(), zerolog.Nop(), pin)
	if err != nil {
		t.Fatal(err)
	}
	lln, pln := listenLocal(t), listenLocal(t)
	if err := lsrv.Serve(lln); err != nil {
		t.Fatal(err)
	}
	psrv.Serve(pln)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = psrv.Shutdown(sctx)
		_ = lsrv.Shutdown(sctx)
	})
	wstest.Eventually(t, 5*time.Second, "sources attached", func() bool { return lin.Status().Connected && pin.Status().Connected })
	go func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			md := dataflow.MarketData{Exchange: "binance", Symbol: "BTC/USDT", Type: "trade",
				Timestamp: time.Now().UnixMilli(), Data: []byte(fmt.Sprintf(`{"seq":%d,"price":"1.5"}`, seq))}
			_ = lin.Output(ctx, md)
			if drop == nil || !drop(seq) {
				_ = pin.Output(ctx, md)
			}
		}
	}()
	return "ws://" + lln.Addr().String() + "/ws", "ws://" + pln.Addr().String() + "/ws"
}

func listenLocal(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// runCompareCmd runs `wsproxy compare` and returns its exit code, stdout
// and stderr.
// parityGrace is the --grace of runs that expect 100 % parity: the grace
// ends as soon as every in-window message has its counterpart, so a side
// slowed by a busy machine or the race detector may take long to catch up
// at no cost to a run that passes.
const parityGrace = "20s"

func runCompareCmd(t testing.TB, args ...string) (int, []byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"compare"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.Bytes(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.Bytes(), stderr.String()
	}
	t.Fatalf("compare: %v\n%s", err, stderr.String())
	return 0, nil, ""
}

// TestCompareSubcommand runs the real `wsproxy compare` against the legacy
// reference and wsproxy: 100 % parity exits 0 with a JSON report and a
// progress line; a dropped message exits 1; bad usage exits 2.
func TestCompareSubcommand(t *testing.T) {
	t.Run("parity", func(t *testing.T) {
		lu, pu := sharedFeed(t, nil)
		code, out, stderr := runCompareCmd(t, "--legacy", lu, "--proxy", pu, "--count", "300",
			"--warmup", "100ms", "--grace", parityGrace, "--json")
		var r compare.Report
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("report not JSON: %v\n%s\n%s", err, out, stderr)
		}
		if code != 0 || !r.Pass || r.Parity != 100 || r.Matched < 250 {
			t.Fatalf("exit %d, report %s\n%s", code, out, stderr)
		}
		if !strings.Contains(stderr, "compare done") {
			t.Fatalf("no progress line on stderr: %q", stderr)
		}
	})
	t.Run("dropped message", func(t *testing.T) {
		lu, pu := sharedFeed(t, func(seq int) bool { return seq%50 == 10 })
		code, out, stderr := runCompareCmd(t, "--legacy", lu, "--proxy", pu, "--count", "300",
			"--warmup", "100ms", "--grace", "1s", "--subscribe", "channel", "--quiet")
		if code != 1 || !bytes.Contains(out, []byte("FAIL")) || !bytes.Contains(out, []byte("missing in proxy:")) {
			t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
		}
		if stderr != "" && strings.Contains(stderr, "compare window") {
			t.Fatalf("--quiet printed progress: %q", stderr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"--legacy", "http://x", "--proxy", "ws://y"},
			{"--legacy", "ws://x", "--proxy", "ws://y", "--subscribe", "everything"},
			{"--bogus"},
			{"--legacy", "ws://127.0.0.1:1/ws", "--proxy", "ws://127.0.0.1:1/ws"},
		} {
			if code, out, stderr := runCompareCmd(t, args...); code != 2 {
				t.Fatalf("%q: exit %d\n%s\n%s", args, code, out, stderr)
			}
		}
	})
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
