package dataflow_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wsproxy/dataflow"
	"wsproxy/internal/configtest"
)

// startCluster runs a private single-node Redis Cluster (all 16384 slots on
// one node) on a free port and returns its address.
func startCluster(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("LOUD SKIP: redis-server not installed; scripts/test.sh installs it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--cluster-enabled", "yes",
		"--cluster-config-file", dir+"/nodes.conf", "--dir", dir, "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	waitUntil(t, 10*time.Second, "redis-server up", func() bool { return rdb.Ping(ctx).Err() == nil })
	if err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	waitUntil(t, 10*time.Second, "cluster_state:ok", func() bool {
		s, err := rdb.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(s, "cluster_state:ok")
	})
	return addr
}

func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisShardedConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  dataflow.RedisShardedConfig
		ok   bool
	}{
		{name: "disabled", cfg: configtest.RedisSharded(dataflow.RedisShardedConfig{}), ok: true},
		{name: "valid", cfg: configtest.RedisSharded(dataflow.RedisShardedConfig{Enabled: true, Addrs: []string{"a:1"}, Channels: []string{"market-data-trade-x"}}), ok: true},
		{name: "no addrs", cfg: configtest.RedisSharded(dataflow.RedisShardedConfig{Enabled: true, Channels: []string{"c"}})},
		{name: "no channels", cfg: configtest.RedisSharded(dataflow.RedisShardedConfig{Enabled: true, Addrs: []string{"a:1"}})},
		{name: "pattern", cfg: configtest.RedisSharded(dataflow.RedisShardedConfig{Enabled: true, Addrs: []string{"a:1"}, Channels: []string{"market-data-*"}})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, dataflow.ErrShardedConfig) {
				t.Fatalf("error %v does not wrap ErrShardedConfig", err)
			}
		})
	}
}

// TestRedisShardedReceivesSPUBLISH runs the source against a real Redis
// Cluster node: messages SPUBLISHed on channels of different hash slots all
// arrive, invalid ones are rejected and counted, and KeySlot agrees with the
// server's CLUSTER KEYSLOT.
func TestRedisShardedReceivesSPUBLISH(t *testing.T) {
	addr := startCluster(t)
	prefix := fmt.Sprintf("t%d-", time.Now().UnixNano())
	chans := []string{prefix + "market-data-trade-binance", prefix + "market-data-ticker-okx", prefix + "market-data-trade-{bybit}"}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ch := range append(chans, "{user1000}.following", "foo", "123456789") {
		want, err := rdb.ClusterKeySlot(ctx, ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := dataflow.KeySlot(ch); int64(got) != want {
			t.Fatalf("KeySlot(%q) = %d, server says %d", ch, got, want)
		}
	}

	src, err := dataflow.NewRedisSharded(configtest.RedisSharded(dataflow.RedisShardedConfig{Addrs: []string{addr}, Channels: chans}))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- src.Run(runCtx, s) }()
	waitUntil(t, 10*time.Second, "subscribed", func() bool { return src.Stats().Connected })

	for i, ch := range chans {
		body := fmt.Sprintf(`{"exchange":"x","symbol":"BTC/USDT","type":"trade","timestamp":%d,"data":{"i":%d}}`, i+1, i)
		if err := rdb.SPublish(ctx, ch, body).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.SPublish(ctx, chans[0], `[{"exchange":"x"}]`).Err(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "deliveries", func() bool {
		return s.byType()["trade"] == len(chans) && src.Stats().Rejected == 1
	})
	if st := src.Stats(); st.Received != uint64(len(chans)) || st.Type != "redis-sharded" {
		t.Fatalf("stats %+v", st)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if src.Stats().Connected {
		t.Fatal("still connected after Run returned")
	}
}
