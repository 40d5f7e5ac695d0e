package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wsproxy/config"
	"wsproxy/internal/redistest"
	"wsproxy/internal/wstest"
)

func healthStatus(t testing.TB, p *proc) string {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/websocket/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.Status
}

// TestRedisKilledMidStream: the proxy reads a Redis Stream; Redis is killed
// (SIGKILL) while entries are being added and restarted. Health goes
// degraded, then healthy again, and the client receives every entry once,
// in order, without a gap.
func TestRedisKilledMidStream(t *testing.T) {
	if _, ok := reflect.TypeOf(config.SourcesConfig{}).FieldByName("Streams"); !ok {
		t.Skip("SKIPPED: this tree has no Redis Streams source (sources.streams); the Redis fault test did not run")
	}
	rs := redistest.Start(t)
	key := fmt.Sprintf("e2e-fault-%d", time.Now().UnixNano())
	p := startProc(t, []string{
		"WSPROXY_SOURCES_DEMO_ENABLED=false",
		"WSPROXY_SOURCES_STREAMS_ENABLED=true",
		"WSPROXY_SOURCES_STREAMS_ADDR=" + rs.Addr,
		"WSPROXY_SOURCES_STREAMS_KEYS=" + key,
		"WSPROXY_SOURCES_STREAMS_START=0",
		"WSPROXY_SOURCES_STREAMS_BLOCK=200ms",
		"WSPROXY_SOURCES_STREAMS_BACKOFF_MAX=300ms",
	})
	wstest.Eventually(t, 10*time.Second, "healthy with Redis up", func() bool { return healthStatus(t, p) == "healthy" })
	c := wstest.Dial(t, p.url("/ws"))
	c.NextOfType(t, "welcome", 5*time.Second)

	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	seq := 0
	add := func() error {
		md := fmt.Sprintf(`{"exchange":"e2e","symbol":"BTC/USDT","type":"trade","timestamp":%d,"data":{"seq":%d}}`, time.Now().UnixMilli(), seq+1)
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []string{"data", md}}).Err(); err != nil {
			return err
		}
		seq++
		return nil
	}
	received := 0
	expect := func(upTo int) {
		t.Helper()
		for received < upTo {
			m := c.Next(t, 10*time.Second)
			if m.Type != "trade" {
				continue
			}
			data, _ := m.Payload["data"].(map[string]any)
			got, _ := data["seq"].(float64)
			if int(got) != received+1 {
				t.Fatalf("received seq %v after %d: gap or duplicate", data["seq"], received)
			}
			received++
		}
	}
	for i := 0; i < 50; i++ {
		if err := add(); err != nil {
			t.Fatal(err)
		}
	}
	expect(25) // mid-stream: the proxy is still delivering when Redis dies

	rs.Kill9(t)
	wstest.Eventually(t, 10*time.Second, "health degraded with Redis down", func() bool { return healthStatus(t, p) == "degraded" })
	if err := add(); err == nil {
		t.Fatal("XADD succeeded with Redis down")
	}
	rs.Restart(t)             // answers PING (data loaded) before it returns
	for i := 0; i < 50; i++ { // entries added right after the restart, while the proxy reconnects
		if err := add(); err != nil {
			t.Fatal(err)
		}
	}
	wstest.Eventually(t, 15*time.Second, "healthy again after the restart", func() bool { return healthStatus(t, p) == "healthy" })
	for i := 0; i < 50; i++ {
		if err := add(); err != nil {
			t.Fatal(err)
		}
	}
	expect(seq)
	if extra := c.Drain(300 * time.Millisecond); len(extra) > 0 {
		for _, m := range extra {
			if m.Type == "trade" {
				t.Fatalf("duplicate after the last entry: %s", m.Raw)
			}
		}
	}
	t.Logf("%d stream entries across a Redis SIGKILL and restart: all received once, in order", seq)
}
