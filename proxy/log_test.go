package proxy_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"wsproxy/config"
	"wsproxy/internal/wstest"
	"wsproxy/observe"
)

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines written so far.
func (s *syncBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func startLogged(t testing.TB, level string) (*harness, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	cfg := config.Config{Log: config.LogConfig{Level: level}}
	cfg.ApplyDefaults()
	return startWith(t, cfg, observe.NewLogger(cfg.Log, buf)), buf
}

// TestInfoLevelLogsNothingPerMessage floods three clients, which also send
// requests and bad messages, and finds only process-level lines at info.
func TestInfoLevelLogsNothingPerMessage(t *testing.T) {
	h, buf := startLogged(t, "info")
	clients := []*wstest.Client{h.dial(t), h.dial(t), h.dial(t)}
	const n = 2000
	for i := 0; i < n; i++ {
		h.publish(t, "binance", "trade", "BTC/USDT", int64(i+1))
		if i%100 == 0 {
			for _, c := range clients {
				c.Send(t, `{"type":"ping"}`)
				c.Send(t, `{"type":"bogus"}`)
			}
		}
	}
	for _, c := range clients {
		syncPing(t, c)
		_ = c.Conn.Close()
	}
	wstest.Eventually(t, wait, "clients gone", func() bool { return h.srv.Pool().Len() == 0 })
	lines := buf.lines(t)
	if len(lines) > 2 {
		t.Fatalf("%d log lines at info for %d messages; want only the start line:\n%v", len(lines), n, lines)
	}
	for _, l := range lines {
		if l["level"] != "info" || l["conn_id"] != nil {
			t.Fatalf("unexpected line at info: %v", l)
		}
	}
}

// TestDebugLevelLogsConnectionLifecycle: each connection's start and end
// are logged at debug by a child logger carrying its conn_id.
func TestDebugLevelLogsConnectionLifecycle(t *testing.T) {
	h, buf := startLogged(t, "debug")
	c := h.dial(t)
	h.publish(t, "binance", "trade", "BTC/USDT", 1)
	c.NextOfType(t, "trade", wait)
	_ = c.Conn.Close()
	wstest.Eventually(t, wait, "client gone", func() bool { return h.srv.Pool().Len() == 0 })
	byMsg := map[string]map[string]any{}
	wstest.Eventually(t, wait, "lifecycle lines", func() bool {
		for _, l := range buf.lines(t) {
			if msg, _ := l["message"].(string); l["conn_id"] != nil {
				byMsg[msg] = l
			}
		}
		return len(byMsg) >= 2
	})
	conn, ok := byMsg["connected"]
	if !ok || conn["level"] != "debug" || conn["remote"] == nil {
		t.Fatalf("no debug 'connected' line with conn_id: %v", byMsg)
	}
	for msg, l := range byMsg {
		if l["conn_id"] != conn["conn_id"] || l["level"] != "debug" {
			t.Fatalf("%q: %v", msg, l)
		}
	}
}
