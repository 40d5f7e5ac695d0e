//go:build unix

// Package rlimit raises the process's open-file limit.
package rlimit

import (
	"syscall"

	"github.com/rs/zerolog"
)

// RaiseOpenFiles lifts the soft limit on open files to the hard limit: every
// WebSocket connection is a file, and the soft limit is often far lower.
func RaiseOpenFiles(log zerolog.Logger) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur >= l.Max {
		return
	}
	old := l.Cur
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		log.Warn().Err(err).Uint64("soft", old).Uint64("hard", l.Max).Msg("cannot raise the open-file limit")
		return
	}
	log.Debug().Uint64("from", old).Uint64("to", l.Max).Msg("open-file limit raised")
}
