package compare_test

import (
	"testing"

	"wsproxy/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
