package compat_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"wsproxy/compat"
)

// TestAppendStatsReplyIsSuperset checks that the getStats reply carries the
// deployed legacy server's four keys with its shapes ahead of the proxy's
// own keys (B's connection, subscription, health, pool).
func TestAppendStatsReplyIsSuperset(t *testing.T) {
	legacy := compat.LegacyStats{
		Connections:   compat.LegacyConnections{Total: 3, Active: 3, AvgDuration: 806},
		Subscriptions: compat.LegacySubscriptions{Total: 1, Channels: []string{"marketData"}},
		Server:        compat.LegacyServer{Uptime: 1.5, Timestamp: 9, Memory: compat.LegacyMemory{RSS: 1, HeapTotal: 2, HeapUsed: 3}},
	}
	b := struct {
		Connection map[string]int `json:"connection"`
		Pool       map[string]int `json:"pool"`
	}{map[string]int{"activeConnections": 3}, map[string]int{"totalMessagesSent": 4}}
	out, err := compat.AppendStatsReply(nil, legacy, b, 7)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type      string                     `json:"type"`
		Payload   map[string]json.RawMessage `json:"payload"`
		Timestamp int64                      `json:"timestamp"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	keys := make([]string, 0, len(got.Payload))
	for k := range got.Payload {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"adapters", "connection", "connections", "pool", "server", "subscriptions"}; got.Type != "stats" || got.Timestamp != 7 || !reflect.DeepEqual(keys, want) {
		t.Fatalf("reply %s: keys %v, want %v", out, keys, want)
	}
	for key, want := range map[string]string{
		"connections":   `{"total":3,"active":3,"avgDuration":806}`,
		"subscriptions": `{"total":1,"channels":["marketData"]}`,
		"adapters":      `[]`,
		"server":        `{"uptime":1.5,"memory":{"rss":1,"heapTotal":2,"heapUsed":3,"external":0,"arrayBuffers":0},"timestamp":9}`,
		"connection":    `{"activeConnections":3}`,
	} {
		if string(got.Payload[key]) != want {
			t.Errorf("payload.%s = %s, want %s", key, got.Payload[key], want)
		}
	}
	empty, err := compat.AppendStatsReply(nil, compat.LegacyStats{}, struct{}{}, 1)
	if err != nil || !json.Valid(empty) {
		t.Fatalf("empty stats: %s, %v", empty, err)
	}
	if _, err := compat.AppendStatsReply(nil, legacy, []int{1}, 1); err == nil {
		t.Fatal("a non-object accepted as the proxy's stats")
	}
}
