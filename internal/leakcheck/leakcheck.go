// Package leakcheck fails a test binary that leaves goroutines behind. Use
// it from TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests, then waits up to 5 s for every goroutine started by
// them to end, and exits non-zero listing those that did not.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := Leaked(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// Leaked polls until only the calling goroutine and those of the runtime and
// the test framework remain, and returns the stacks of the others if they
// are still there after wait.
func Leaked(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		var leaked []string
		buf := make([]byte, 1<<20)
		stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
		for _, g := range stacks[1:] { // stacks[0] is the calling goroutine
			if !ignored(g) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// housekeeping are goroutines that libraries start once per process or
// that end on their own schedule after their owner stopped (fasthttp's
// worker-pool cleaner sleeps 10 s before it notices the stop).
var housekeeping = []string{
	"os/signal.",
	"wsproxy/internal/netpoll.(*poller).run", // the process's one epoll wait, started with the first parked socket
	"testing.",
	"fasthttp.updateServerDate",
	"fasthttp.(*workerPool).Start.func2",
	"fasthttp.(*Client).mCleaner",
	"fasthttp.(*HostClient).connsCleaner",
	"fasthttp.(*TCPDialer).startTCPAddrsClean",
}

func ignored(stack string) bool {
	for _, h := range housekeeping {
		if strings.Contains(stack, h) {
			return true
		}
	}
	return false
}
