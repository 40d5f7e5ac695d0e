package e2e

import (
	"context"
	"testing"
	"time"

	"wsproxy/tools/loadtest"
)

// TestLoadSmoke runs the load tool's engine against a wsproxy process fed by
// a private Redis: 500 connections spread over the loopback source
// addresses, a mix of unfiltered, per-exchange and per-symbol subscribers,
// 5 s of publishing. It asserts that every connection was established and
// that nothing was lost — never speed (figures are in BENCHMARKS.md).
func TestLoadSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("load smoke skipped with -short")
	}
	rds := loadRedis(t)
	srv, addr := loadServer(t, rds.Addr)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Name: "smoke", URLs: []string{"ws://" + addr + "/ws"}, Conns: 500,
		Mix:  loadtest.Mix{All: 1, Exchange: 1, Symbol: 1},
		Rate: 20, Duration: 5 * time.Second, Idle: 500 * time.Millisecond, Drain: 10 * time.Second,
		RedisAddr: rds.Addr, ServerPIDs: []int{srv.PID()},
	})
	if err != nil {
		t.Fatalf("%v\nserver logs:\n%s", err, srv.Logs())
	}
	t.Logf("smoke: %d conns, published %d, received %d of %d, p99 %.1f ms, %.1f KB/conn",
		rep.Established, rep.Published, rep.Received, rep.Expected, rep.Latency.P99, rep.KBPerConn)
	if rep.Established != 500 || rep.Failed != 0 {
		t.Fatalf("established %d, failed %d (%v), want 500, 0", rep.Established, rep.Failed, rep.Errors)
	}
	if rep.Published != 100 || rep.Expected == 0 {
		t.Fatalf("published %d, expected %d: the publisher did not run", rep.Published, rep.Expected)
	}
	if rep.Lost != 0 || rep.Disconnected != 0 {
		t.Fatalf("lost %d of %d messages, %d connections dropped", rep.Lost, rep.Expected, rep.Disconnected)
	}
}

// loadRedis starts the private redis-server of a load test.
func loadRedis(t *testing.T) *loadtest.Server {
	t.Helper()
	rds, err := loadtest.StartRedis(t.TempDir())
	if err != nil {
		t.Skipf("LOUD SKIP: %v: the load smoke needs a private redis-server (scripts/test.sh installs it)", err)
	}
	t.Cleanup(rds.Stop)
	return rds
}

// loadServer starts wsproxy fed by the Redis at redisAddr, with extra
// environment env, and returns it with its address. It runs the build
// without the race detector (plainBinary): the race detector would dominate
// a load run.
func loadServer(t *testing.T, redisAddr string, env ...string) (*loadtest.Server, string) {
	t.Helper()
	bin := plainBinary(t)
	addr, err := loadtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := loadtest.StartServer(addr, append([]string{"WSPROXY_LISTEN=" + addr, "WSPROXY_LOG_LEVEL=warn",
		"WSPROXY_SOURCES_REDIS_ENABLED=true", "WSPROXY_SOURCES_REDIS_ADDR=" + redisAddr}, env...), bin, "-config=")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv, addr
}

// TestLoadDemoFeedCompression runs the load tool's demo market-data feed
// (trades, tickers, depth, klines) against wsproxy with compression off and
// with shared_stream, 300 connections each (unfiltered, per exchange, per
// symbol), the clients offering permessage-deflate. It asserts that nothing
// was lost, that the clients negotiated compression only where the server
// has it on, and that shared_stream put fewer bytes on the clients' sockets
// per delivered message than off — bytes, never time.
func TestLoadDemoFeedCompression(t *testing.T) {
	if testing.Short() {
		t.Skip("load smoke skipped with -short")
	}
	rds := loadRedis(t)
	run := func(mode string, env ...string) loadtest.Report {
		t.Helper()
		srv, addr := loadServer(t, rds.Addr, env...)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		rep, err := loadtest.Run(ctx, loadtest.Config{
			Name: mode, URLs: []string{"ws://" + addr + "/ws"}, Conns: 300, Feed: loadtest.FeedDemo, Compress: true,
			Mix:  loadtest.Mix{All: 1, Exchange: 1, Symbol: 1},
			Rate: 50, Duration: 3 * time.Second, Idle: 500 * time.Millisecond, Drain: 10 * time.Second,
			RedisAddr: rds.Addr, ServerPIDs: []int{srv.PID()},
		})
		if err != nil {
			t.Fatalf("%s: %v\nserver logs:\n%s", mode, err, srv.Logs())
		}
		srv.Stop()
		t.Logf("%s: published %d, received %d of %d, %d compressing, %.1f wire B/msg",
			mode, rep.Published, rep.Received, rep.Expected, rep.Compressed, rep.WireBytesPerMsg)
		if rep.Established != 300 || rep.Published != 150 || rep.Expected == 0 {
			t.Fatalf("%s: established %d (%v), published %d, expected %d", mode, rep.Established, rep.Errors, rep.Published, rep.Expected)
		}
		if rep.Lost != 0 || rep.Disconnected != 0 {
			t.Fatalf("%s: lost %d of %d messages, %d connections dropped", mode, rep.Lost, rep.Expected, rep.Disconnected)
		}
		return rep
	}
	off := run("off")
	shared := run("shared_stream", "WSPROXY_COMPRESSION_ENABLED=true", "WSPROXY_COMPRESSION_MODE=shared_stream")
	if off.Compressed != 0 || shared.Compressed != 300 {
		t.Fatalf("compressing connections: off %d, shared_stream %d; want 0, 300", off.Compressed, shared.Compressed)
	}
	if off.WireBytesPerMsg == 0 || shared.WireBytesPerMsg >= off.WireBytesPerMsg {
		t.Fatalf("wire bytes per message: shared_stream %.1f, off %.1f; want fewer with shared_stream", shared.WireBytesPerMsg, off.WireBytesPerMsg)
	}
}

// TestLoadCountOnlyClients runs the demo feed against wsproxy off,
// per_message and shared_stream with only every third connection decoding
// (loadtest.Config.InflateEvery): the others count data frames from their
// headers. 300 connections (unfiltered, per exchange, per symbol); it
// asserts that exactly what was published arrived on every connection —
// no loss and no frame counted that was not a message — and that 100
// connections decoded, in every mode.
func TestLoadCountOnlyClients(t *testing.T) {
	if testing.Short() {
		t.Skip("load smoke skipped with -short")
	}
	rds := loadRedis(t)
	for _, tc := range []struct {
		mode       string
		env        []string
		compressed int
	}{
		{mode: "off"},
		{mode: "per_message", env: []string{"WSPROXY_COMPRESSION_ENABLED=true", "WSPROXY_COMPRESSION_MODE=per_message"}, compressed: 300},
		{mode: "shared_stream", env: []string{"WSPROXY_COMPRESSION_ENABLED=true", "WSPROXY_COMPRESSION_MODE=shared_stream"}, compressed: 300},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			srv, addr := loadServer(t, rds.Addr, tc.env...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rep, err := loadtest.Run(ctx, loadtest.Config{
				Name: tc.mode, URLs: []string{"ws://" + addr + "/ws"}, Conns: 300, Feed: loadtest.FeedDemo, Compress: true, InflateEvery: 3,
				Mix:  loadtest.Mix{All: 1, Exchange: 1, Symbol: 1},
				Rate: 50, Duration: 3 * time.Second, Idle: 500 * time.Millisecond, Drain: 10 * time.Second,
				RedisAddr: rds.Addr, ServerPIDs: []int{srv.PID()},
			})
			if err != nil {
				t.Fatalf("%v\nserver logs:\n%s", err, srv.Logs())
			}
			t.Logf("published %d, received %d of %d, %d compressing, %d decoding", rep.Published, rep.Received, rep.Expected, rep.Compressed, rep.Inflating)
			if rep.Established != 300 || rep.Published != 150 || rep.Expected == 0 {
				t.Fatalf("established %d (%v), published %d, expected %d", rep.Established, rep.Errors, rep.Published, rep.Expected)
			}
			if rep.Received != rep.Expected || rep.Disconnected != 0 {
				t.Fatalf("received %d of %d messages, %d connections dropped", rep.Received, rep.Expected, rep.Disconnected)
			}
			if rep.Compressed != tc.compressed || rep.Inflating != 100 {
				t.Fatalf("compressing %d, decoding %d connections; want %d, 100", rep.Compressed, rep.Inflating, tc.compressed)
			}
			if rep.Latency.Max <= 0 {
				t.Fatalf("no latency recorded by the decoding connections: %+v", rep.Latency)
			}
		})
	}
}
