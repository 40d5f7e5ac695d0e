package main

import (
	"os"
	"strings"
	"syscall"
)

// smallStacksSetting makes goroutines start at Go's smallest stack, 2 KiB,
// rather than at the average size the runtime last scanned (on by default).
// A connection's read goroutine lives as long as the connection and needs no
// more than that (proxy/shallow.go), but the average taken while handshakes
// are under way is larger, and a goroutine that started at 4 KiB and is
// parked in a read never shrinks back: that is 2 KiB more per idle
// connection. Goroutines that need more grow as usual.
const smallStacksSetting = "adaptivestackstart=0"

// smallStacks re-executes the binary in place (same process id, arguments
// and environment) with the setting added to GODEBUG, which the runtime
// reads only at start. A GODEBUG that already names adaptivestackstart is
// respected, so GODEBUG=adaptivestackstart=1 restores Go's default. If the
// exec fails the process goes on with the default.
func smallStacks() {
	cur, set := os.LookupEnv("GODEBUG")
	if strings.Contains(cur, "adaptivestackstart=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	v := smallStacksSetting
	if set && cur != "" {
		v = cur + "," + v
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GODEBUG="+v)
	_ = syscall.Exec(exe, os.Args, env)
}
