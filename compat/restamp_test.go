package compat_test

import (
	"encoding/json"
	"testing"

	"wsproxy/compat"
)

func TestRestamp(t *testing.T) {
	orig, err := compat.AppendStats(nil, map[string]any{"a": map[string]any{"timestamp": 5}, "timestamp": 7}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := compat.Restamp(nil, orig, 1723190400123)
	want, _ := compat.AppendStats(nil, map[string]any{"a": map[string]any{"timestamp": 5}, "timestamp": 7}, 1723190400123)
	if string(got) != string(want) {
		t.Fatalf("Restamp = %s, want %s", got, want)
	}
	if !json.Valid(got) {
		t.Fatalf("not JSON: %s", got)
	}
	if odd := compat.Restamp(nil, []byte(`{"x":1}`), 9); string(odd) != `{"x":1}` {
		t.Fatalf("frame without timestamp changed: %s", odd)
	}
}
