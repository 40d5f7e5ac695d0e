package sources_test

import (
	"testing"

	"wsproxy/internal/leakcheck"
)

// TestMain fails the run when tests leave goroutines behind.
func TestMain(m *testing.M) { leakcheck.Main(m) }
