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
	dir := t.TempDir()
	rds, err := loadtest.StartRedis(dir)
	if err != nil {
		t.Skipf("LOUD SKIP: %v: the load smoke needs a private redis-server (scripts/test.sh installs it)", err)
	}
	t.Cleanup(rds.Stop)

	// The build without the race detector (plainBinary): the race
	// detector would dominate a load run.
	bin := plainBinary(t)
	addr, err := loadtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := loadtest.StartServer(addr, []string{"WSPROXY_LISTEN=" + addr, "WSPROXY_LOG_LEVEL=warn",
		"WSPROXY_SOURCES_REDIS_ENABLED=true", "WSPROXY_SOURCES_REDIS_ADDR=" + rds.Addr}, bin, "-config=")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

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
