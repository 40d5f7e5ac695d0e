package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
	"wsproxy/proxy"
	"wsproxy/tools/compare"
)

// TestCompareCompressingNode: `wsproxy compare` between a node without
// compression and one with it (the compare client offering
// permessage-deflate, as a browser does) reports 100 % parity, in both
// modes, while the second node really compresses.
func TestCompareCompressingNode(t *testing.T) {
	for _, mode := range []string{"per_message", "shared_stream"} {
		t.Run(mode, func(t *testing.T) {
			plainIn, zIn := dataflow.NewInProcess("plain"), dataflow.NewInProcess("compressing")
			plain, err := proxy.New(roomyProxy(), zerolog.Nop(), plainIn)
			if err != nil {
				t.Fatal(err)
			}
			zcfg := roomyProxy()
			zcfg.Compression.Enabled = true
			zcfg.Compression.Mode = pool.DeflateMode(mode)
			zsrv, err := proxy.New(zcfg, zerolog.Nop(), zIn)
			if err != nil {
				t.Fatal(err)
			}
			pln, zln := listenLocal(t), listenLocal(t)
			plain.Serve(pln)
			zsrv.Serve(zln)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(func() {
				cancel()
				sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer scancel()
				_ = plain.Shutdown(sctx)
				_ = zsrv.Shutdown(sctx)
			})
			wstest.Eventually(t, 5*time.Second, "sources attached", func() bool { return plainIn.Status().Connected && zIn.Status().Connected })
			go func() {
				tick := time.NewTicker(2 * time.Millisecond)
				defer tick.Stop()
				types := []string{"trade", "ticker", "depth", "kline_1m"}
				for seq := 1; ; seq++ {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					md := dataflow.MarketData{Exchange: "binance", Symbol: "BTC/USDT", Type: types[seq%4],
						Timestamp: time.Now().UnixMilli(),
						Data:      []byte(fmt.Sprintf(`{"seq":%d,"price":"64%03d.5","qty":"0.%03d","bids":[["64000.1","1.2"],["63999.9","0.4"]]}`, seq, seq%1000, seq%997))}
					_ = plainIn.Output(ctx, md)
					_ = zIn.Output(ctx, md)
				}
			}()
			code, out, stderr := runCompareCmd(t, "--legacy", "ws://"+pln.Addr().String()+"/ws", "--proxy", "ws://"+zln.Addr().String()+"/ws",
				"--proxy-compress", "--count", "300", "--warmup", "100ms", "--grace", parityGrace, "--json", "--quiet")
			var r compare.Report
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("report not JSON: %v\n%s\n%s", err, out, stderr)
			}
			if code != 0 || !r.Pass || r.Parity != 100 || r.Matched < 250 {
				t.Fatalf("exit %d, report %s\n%s", code, out, stderr)
			}
			z := zsrv.Stats().Pool.Compression
			if z == nil || z.FramesCompressed < 250 || z.BytesOut >= z.BytesIn {
				t.Fatalf("compressing node stats %+v", z)
			}
			// Without the offer the compressing node is refused by
			// --proxy-compress against the plain node.
			if code, _, _ := runCompareCmd(t, "--legacy", "ws://"+zln.Addr().String()+"/ws", "--proxy", "ws://"+pln.Addr().String()+"/ws",
				"--proxy-compress", "--count", "10", "--quiet"); code != 2 {
				t.Fatalf("--proxy-compress against a node without compression: exit %d", code)
			}
		})
	}
}
