//go:build !unix

package rlimit

import "github.com/rs/zerolog"

// RaiseOpenFiles does nothing where there are no resource limits to raise.
func RaiseOpenFiles(zerolog.Logger) {}
