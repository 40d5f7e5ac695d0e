package observe_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"wsproxy/config"
	"wsproxy/observe"
)

func TestLogFormats(t *testing.T) {
	tests := []struct {
		name, format string
		json         bool
	}{
		{"default is json", "", true},
		{"json", "json", true},
		{"pretty", "pretty", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			log := observe.NewLogger(config.LogConfig{Format: tt.format}, &b)
			log.Info().Str("k", "v").Msg("hello")
			var m map[string]any
			isJSON := json.Unmarshal(b.Bytes(), &m) == nil
			if isJSON != tt.json || !strings.Contains(b.String(), "hello") {
				t.Fatalf("output %q (json %v)", b.String(), isJSON)
			}
			if tt.json && (m["level"] != "info" || m["time"] == nil || m["k"] != "v") {
				t.Fatalf("json line %v", m)
			}
		})
	}
}
