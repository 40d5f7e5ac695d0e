//go:build race

package wstest

// RaceEnabled reports whether the race detector is on (allocation counts
// are meaningless then).
const RaceEnabled = true
