// Command cpuhog keeps every core busy until it is killed: make test-loaded
// runs the test suite beside it, so that the suite proves it holds on a
// loaded machine (scripts/test.sh with CI_LOADED=1).
package main

import (
	"flag"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

func main() {
	n := flag.Int("n", runtime.NumCPU(), "busy goroutines (one per core by default)")
	flag.Parse()
	runtime.GOMAXPROCS(*n)
	for i := 0; i < *n; i++ {
		go spin()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

var sink uint64

func spin() {
	x := uint64(1)
	for {
		for i := 0; i < 1<<20; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		sink = x // keep the loop from being optimised away
	}
}
