package config_test

import (
	"testing"

	"wsproxy/config"
	"wsproxy/pool"
	"wsproxy/subscription"
)

// The limits section reaches the index with its defaults; negative values
// take them too, explicit ones are kept.
func TestSubscriptionLimitsDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   config.LimitsConfig
		want subscription.Limits
	}{
		{"zero", config.LimitsConfig{}, subscription.Limits{MaxFilters: 16, MaxSymbols: 100, MaxExchanges: 32, MaxValueLen: 64}},
		{"negative", config.LimitsConfig{MaxFilters: -1, MaxSymbols: -5}, subscription.Limits{MaxFilters: 16, MaxSymbols: 100, MaxExchanges: 32, MaxValueLen: 64}},
		{"explicit kept", config.LimitsConfig{MaxFilters: 2, MaxSymbols: 3, MaxExchanges: 4}, subscription.Limits{MaxFilters: 2, MaxSymbols: 3, MaxExchanges: 4, MaxValueLen: 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Config{Limits: tt.in}
			c.ApplyDefaults()
			if got := c.SubscriptionLimits(); got != tt.want {
				t.Fatalf("SubscriptionLimits() = %+v, want %+v", got, tt.want)
			}
			if err := c.SubscriptionLimits().Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The defaulted configuration builds a pool, and every source section is
// complete enough for its constructor (sources_test builds them).
func TestDefaultPoolConfigIsValid(t *testing.T) {
	pc := config.Default().PoolConfig()
	if err := pc.Validate(); err != nil {
		t.Fatal(err)
	}
	if pc.CloseGrace != config.DefaultCloseGrace || pc.BatchMaxBytes != config.DefaultBatchMaxBytes || pc.Memory.Threshold != config.DefaultMemoryThreshold {
		t.Fatalf("PoolConfig() = %+v", pc)
	}
	if _, err := pool.New(pool.Config{}, nil); err == nil {
		t.Fatal("pool.New accepted a zero Config")
	}
}
