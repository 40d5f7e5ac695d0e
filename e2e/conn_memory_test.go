package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"wsproxy/tools/loadtest"
)

// memConns is how many connections TestConnectionMemory opens: enough that
// per-connection costs dominate the process's fixed ones, few enough for CI
// (the load runs take the lock above 2,000).
const memConns = 2000

// TestConnectionMemory runs the real binary as a subprocess, opens memConns
// connections that each subscribe once and then receive data, and bounds
// what a connection costs the server: with idle readers parked (the
// default, park_idle_readers) the server holds far fewer goroutines than
// connections and under 1.5 KiB of goroutine stack per connection (the
// runtime's own count, read over the profiling endpoint; what is left is
// fasthttp's idle handshake workers), where a read goroutine per connection
// would hold at least Go's smallest stack, 2 KiB;
// and the resident memory grown per connection stays under a generous
// bound. Neither bound depends on speed.
func TestConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("connection memory run skipped with -short")
	}
	dir := t.TempDir()
	rds, err := loadtest.StartRedis(dir)
	if err != nil {
		t.Skipf("LOUD SKIP: %v: the memory run needs a private redis-server (scripts/test.sh installs it)", err)
	}
	t.Cleanup(rds.Stop)
	bin := plainBinary(t)
	addr, err := loadtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	pprofAddr, err := loadtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := loadtest.StartServer(addr, []string{"WSPROXY_LISTEN=" + addr, "WSPROXY_LOG_LEVEL=warn",
		"WSPROXY_MAX_CONNECTIONS=" + strconv.Itoa(memConns+100), "WSPROXY_DEBUG_PPROF=" + pprofAddr,
		"WSPROXY_SOURCES_REDIS_ENABLED=true", "WSPROXY_SOURCES_REDIS_ADDR=" + rds.Addr}, bin, "-config=")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stack uint64
	var goroutines int
	rep, err := loadtest.Run(ctx, loadtest.Config{
		AfterLoad: func() { stack, goroutines = serverStacks(t, pprofAddr) },
		Name:      "memory", URLs: []string{"ws://" + addr + "/ws"}, Conns: memConns,
		Mix:  loadtest.Mix{Exchange: 1},
		Rate: 20, Duration: 3 * time.Second, Idle: time.Second, Drain: 15 * time.Second,
		RedisAddr: rds.Addr, ServerPIDs: []int{srv.PID()},
	})
	if err != nil {
		t.Fatalf("%v\nserver logs:\n%s", err, srv.Logs())
	}
	if rep.Established != memConns || rep.Lost != 0 || rep.Received == 0 {
		t.Fatalf("established %d of %d, received %d of %d (%v)", rep.Established, memConns, rep.Received, rep.Expected, rep.Errors)
	}
	perConn := float64(stack) / memConns
	t.Logf("%d conns: stack %d B in %d goroutines (%.0f B per connection), RSS %.2f KB/conn idle, %.2f KB/conn after data",
		memConns, stack, goroutines, perConn, rep.KBPerConn, rep.KBPerConnLoad)
	// fasthttp keeps up to one idle worker per handshake in flight (256)
	// for 10 s after the connection storm; a read goroutine per connection
	// would be memConns more.
	if goroutines > memConns/4 {
		t.Fatalf("%d goroutines for %d idle connections: readers are not parked", goroutines, memConns)
	}
	if perConn > 1536 {
		t.Fatalf("goroutine stacks hold %.0f B per connection, want ≤ 1.5 KiB: idle connections hold stacks", perConn)
	}
	if rep.KBPerConnLoad > 15 {
		t.Fatalf("resident memory grew %.2f KB per connection after subscribe and data, want ≤ 15", rep.KBPerConnLoad)
	}
}

// serverStacks returns the server's stack bytes in use (MemStats.StackInuse)
// and its goroutine count, from its profiling endpoint.
func serverStacks(t *testing.T, addr string) (stack uint64, goroutines int) {
	t.Helper()
	get := func(path string) *bufio.Scanner {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return bufio.NewScanner(resp.Body)
	}
	for sc := get("/debug/pprof/heap?debug=1&gc=1"); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "# Stack = "); ok {
			if _, err := fmt.Sscanf(v, "%d", &stack); err != nil {
				t.Fatalf("stack line %q: %v", sc.Text(), err)
			}
		}
	}
	if sc := get("/debug/pprof/goroutine?debug=1"); sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "goroutine profile: total %d", &goroutines); err != nil {
			t.Fatalf("goroutine line %q: %v", sc.Text(), err)
		}
	}
	if stack == 0 {
		t.Fatal("no stack figure in the heap profile")
	}
	return stack, goroutines
}
