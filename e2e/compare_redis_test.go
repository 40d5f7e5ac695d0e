package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"wsproxy/dataflow"
	"wsproxy/tools/compare"
)

// TestCompareSameRedisBinaries: `wsproxy legacy` and `wsproxy`, two
// processes fed by the same Redis Pub/Sub pattern through the sources
// section of the configuration, and `wsproxy compare` between them reports
// 100 % parity and exits 0.
func TestCompareSameRedisBinaries(t *testing.T) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	prefix := fmt.Sprintf("e2e-compare-%x-", rand.Uint64())
	env := []string{
		"WSPROXY_SOURCES_DEMO_ENABLED=false",
		"WSPROXY_SOURCES_REDIS_ENABLED=true",
		"WSPROXY_SOURCES_REDIS_ADDR=" + addr,
		"WSPROXY_SOURCES_REDIS_PATTERN=" + prefix + "market-data-*",
	}
	node := startProc(t, env)
	waitRedisSource(t, node)
	old := startProc(t, env, "legacy")

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Publish until both processes have subscribed and well beyond: the
	// compare window only counts what both were subscribed for.
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
			md := dataflow.MarketData{Exchange: "binance", Symbol: "BTC/USDT", Type: types[seq%len(types)],
				Timestamp: time.Now().UnixMilli(), Data: []byte(fmt.Sprintf(`{"seq":%d,"price":"1.5"}`, seq))}
			b, _ := json.Marshal(md)
			_ = rdb.Publish(ctx, prefix+"market-data-"+md.Type+"-binance", b).Err()
		}
	}()

	code, out, stderr := runCompareCmd(t, "--legacy", old.url("/ws"), "--proxy", node.url("/ws"),
		"--count", "400", "--warmup", "300ms", "--grace", parityGrace, "--json")
	var r compare.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("report not JSON: %v\n%s\n%s", err, out, stderr)
	}
	if code != 0 || !r.Pass || r.Parity != 100 || r.Matched < 300 || len(r.Types) != 4 {
		t.Fatalf("exit %d, report %s\n%s", code, out, stderr)
	}
	t.Logf("parity %.1f%% over %d messages, skew p50 %.2fms p99 %.2fms", r.Parity, r.Matched, r.Skew.P50, r.Skew.P99)
}

// waitRedisSource waits until the node reports a connected Redis source in
// its stats, and skips loudly when the build has none.
func waitRedisSource(t testing.TB, p *proc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body, err := fasthttp.Get(nil, "http://"+p.addr+"/api/websocket/stats")
		if err != nil || status != 200 {
			t.Fatalf("stats: %d %v", status, err)
		}
		var st struct {
			Dataflow struct {
				Sources []dataflow.SourceStatus `json:"sources"`
			} `json:"dataflow"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range st.Dataflow.Sources {
			if s.Type == "redis" {
				found = true
				if s.Connected {
					return
				}
			}
		}
		if !found {
			t.Skip("SKIPPING SAME-REDIS PARITY TEST: this build has no Redis Pub/Sub source (sources.redis)")
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis source not connected within 10s: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
