package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"wsproxy/cluster"
	"wsproxy/internal/redistest"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
)

// redisWait bounds every wait of the Redis-fed process tests.
const redisWait = 15 * time.Second

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %s: %v", url, b, err)
	}
	return resp.StatusCode
}

func (p *proc) httpURL(path string) string { return "http://" + p.addr + path }

// redisNodeEnv is the environment of a node fed by Redis Pub/Sub and
// registered in the cluster, demo off.
func redisNodeEnv(addr, prefix, node string) []string {
	return []string{
		"WSPROXY_SOURCES_DEMO_ENABLED=false",
		"WSPROXY_SOURCES_REDIS_ENABLED=true",
		"WSPROXY_SOURCES_REDIS_ADDR=" + addr,
		"WSPROXY_SOURCES_REDIS_PATTERN=" + prefix + "market-data-*",
		"WSPROXY_CLUSTER_ENABLED=true",
		"WSPROXY_CLUSTER_REDIS_ADDR=" + addr,
		"WSPROXY_CLUSTER_KEY_PREFIX=" + prefix + "node:",
		"WSPROXY_CLUSTER_NODE_ID=" + node,
		"WSPROXY_CLUSTER_HEARTBEAT=100ms",
		"WSPROXY_CLUSTER_TTL=1s",
		"WSPROXY_LOG_LEVEL=warn",
	}
}

func sourceConnected(t testing.TB, p *proc) bool {
	var st observe.Stats
	getJSON(t, p.httpURL("/api/websocket/stats"), &st)
	return len(st.Dataflow.Sources) == 1 && st.Dataflow.Sources[0].Connected
}

// TestTwoNodesShareOneRedis runs the real binary twice against one Redis:
// both deliver every published message to their clients, and each node's
// cluster stats list both nodes and sum them.
func TestTwoNodesShareOneRedis(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t)
	nodes := []*proc{
		startProc(t, redisNodeEnv(addr, prefix, "node-a")),
		startProc(t, redisNodeEnv(addr, prefix, "node-b")),
	}
	var clients []*wstest.Client
	for _, p := range nodes {
		wstest.Eventually(t, redisWait, "node subscribed to Redis", func() bool { return sourceConnected(t, p) })
		for range 2 {
			c := wstest.Dial(t, p.url("/ws"))
			c.NextOfType(t, "welcome", redisWait)
			clients = append(clients, c)
		}
	}
	rdb := redistest.Client(t, addr)
	const n = 200
	for i := 1; i <= n; i++ {
		typ := []string{"trade", "ticker"}[i%2]
		body := fmt.Sprintf(`{"exchange":"binance","symbol":"BTC/USDT","type":%q,"timestamp":%d,"data":{"seq":%d}}`, typ, 1700000000000+i, i)
		if err := rdb.Publish(context.Background(), prefix+"market-data-"+typ+"-binance", body).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for ci, c := range clients {
		for i := 1; i <= n; i++ {
			m := c.Next(t, redisWait)
			if m.Str("payload", "data", "seq") != fmt.Sprint(i) {
				t.Fatalf("client %d (node %d): message %d is %s", ci, ci/2, i, m.Raw)
			}
		}
	}

	// Both nodes appear in either node's cluster view, with summed totals.
	for _, p := range nodes {
		var cs cluster.Stats
		wstest.Eventually(t, redisWait, "cluster view of both nodes", func() bool {
			cs = cluster.Stats{}
			code := getJSON(t, p.httpURL("/api/websocket/stats?scope=cluster"), &cs)
			return code == 200 && cs.Totals.Nodes == 2 && cs.Totals.Connections == 4 && cs.Totals.MessagesForwarded == 2*n
		})
		if len(cs.Nodes) != 2 || cs.Nodes[0].NodeID != "node-a" || cs.Nodes[1].NodeID != "node-b" ||
			cs.Nodes[0].Address == "" || cs.Nodes[0].Connections != 2 || cs.Scope != "cluster" {
			t.Fatalf("cluster stats = %+v", cs)
		}
	}
	// A node that stops leaves the registry at once; the node-local stats
	// are unchanged by scope.
	if err := nodes[1].stop(t, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	var cs cluster.Stats
	wstest.Eventually(t, redisWait, "stopped node gone", func() bool {
		getJSON(t, nodes[0].httpURL("/api/websocket/stats?scope=cluster"), &cs)
		return cs.Totals.Nodes == 1 && cs.Nodes[0].NodeID == "node-a"
	})
}

// TestClusterNodeExpiresAfterTTL: a node killed without a goodbye
// disappears when its heartbeat's TTL runs out.
func TestClusterNodeExpiresAfterTTL(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t)
	a := startProc(t, redisNodeEnv(addr, prefix, "node-a"))
	b := startProc(t, redisNodeEnv(addr, prefix, "node-b"))
	var cs cluster.Stats
	wstest.Eventually(t, redisWait, "both nodes", func() bool {
		getJSON(t, a.httpURL("/api/websocket/stats?scope=cluster"), &cs)
		return cs.Totals.Nodes == 2
	})
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	wstest.Eventually(t, redisWait, "killed node expired", func() bool {
		getJSON(t, a.httpURL("/api/websocket/stats?scope=cluster"), &cs)
		return cs.Totals.Nodes == 1
	})
	if time.Since(killed) < 500*time.Millisecond {
		t.Fatalf("killed node vanished after %s, before its TTL", time.Since(killed))
	}
}

// TestClusterScopeDisabled answers 404 when the registry is off.
func TestClusterScopeDisabled(t *testing.T) {
	p := startProc(t, []string{"WSPROXY_SOURCES_DEMO_ENABLED=false"})
	var body map[string]string
	if code := getJSON(t, p.httpURL("/api/websocket/stats?scope=cluster"), &body); code != 404 || body["error"] == "" {
		t.Fatalf("%d %v", code, body)
	}
}
