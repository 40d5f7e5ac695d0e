// Command closecount holds many WebSocket clients on one server and reports
// how each connection ended: the close code it received, or the error (a
// reset, an end of stream without a close frame). The shutdown-at-scale
// test runs it as a separate process built without the race detector, so
// that thousands of clients keep up with their sockets while the server
// under test is saturated.
//
// It dials -n clients, each reading and discarding every frame; once every
// client has read -ready frames it prints "ready" on stdout. When every
// connection has ended (or -wait passed after the first one ended) it
// prints one JSON line: {"clients":N,"codes":{"1001":N},"errors":N,
// "unfinished":N,"first":"..."} and exits. With -stall-every K, every K-th
// client stops reading for -stall once every client is fed, and "ready"
// waits -stall-lead more (its socket buffers fill; pings and later the close
// frame wait in them); it then reads on: a client far behind its socket at
// shutdown.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wsproxy/internal/rlimit"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
)

// Report is the JSON line closecount prints at the end.
type Report struct {
	Clients    int            `json:"clients"`
	Codes      map[string]int `json:"codes"`
	Errors     int            `json:"errors"`
	Unfinished int            `json:"unfinished"`
	First      string         `json:"first,omitempty"`
	// EndedInMs is the time from the first connection's end to the last.
	EndedInMs int64 `json:"endedInMs"`
}

type client struct {
	stall  time.Duration // once stalling starts; 0: never
	frames atomic.Int64
	done   atomic.Bool
	code   int
	err    error
}

func main() {
	url := flag.String("url", "", "WebSocket URL (ws://host:port/ws)")
	n := flag.Int("n", 1000, "clients")
	dialers := flag.Int("dialers", 50, "handshakes in flight")
	ready := flag.Int64("ready", 3, "frames every client reads before \"ready\" is printed")
	readyWait := flag.Duration("ready-wait", 60*time.Second, "longest wait for every client to be ready")
	wait := flag.Duration("wait", 30*time.Second, "longest wait for every connection to end, from the first end")
	stallEvery := flag.Int("stall-every", 0, "every K-th client stops reading for -stall once ready (0: none)")
	stall := flag.Duration("stall", 8*time.Second, "how long a stalling client stops reading")
	lead := flag.Duration("stall-lead", 3*time.Second, "with -stall-every: how long the stalling clients have stopped reading when \"ready\" is printed")
	stallBuf := flag.Int("stall-rcvbuf", 4096, "socket receive buffer of a stalling client (bytes; small: its backlog stays in the server's send buffer)")
	flag.Parse()
	if *url == "" {
		fail(errors.New("-url is required"))
	}
	rlimit.RaiseOpenFiles(zerolog.Nop())

	clients := make([]*client, *n)
	var (
		next    atomic.Int64
		dialErr atomic.Pointer[error]
		dialWG  sync.WaitGroup
		readWG  sync.WaitGroup
		ended   = make(chan struct{})
		endOnce sync.Once
		first   atomic.Int64 // unix ns of the first end
		// stalling is closed once every client is ready.
		stalling = make(chan struct{})
	)
	d := websocket.Dialer{HandshakeTimeout: 60 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 256}
	sd := d
	sd.NetDial = (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, *stallBuf)
		})
		return errors.Join(err, serr)
	}}).Dial
	for w := 0; w < *dialers; w++ {
		dialWG.Add(1)
		go func() {
			defer dialWG.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n || dialErr.Load() != nil {
					return
				}
				// A handshake may fail on a busy machine: dial again a few
				// times, as a browser would.
				stalls := *stallEvery > 0 && i%*stallEvery == 0
				dialer := &d
				if stalls {
					dialer = &sd
				}
				var conn *websocket.Conn
				var err error
				for try := 0; try < 5; try++ {
					if conn, _, err = dialer.Dial(*url, nil); err == nil {
						break
					}
					time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
				}
				if err != nil {
					dialErr.Store(&err)
					return
				}
				c := &client{}
				if stalls {
					c.stall = *stall
				}
				clients[i] = c
				readWG.Add(1)
				go func() {
					defer readWG.Done()
					c.code, c.err = readAll(conn, c, stalling)
					first.CompareAndSwap(0, time.Now().UnixNano())
					c.done.Store(true)
					endOnce.Do(func() { close(ended) })
				}()
			}
		}()
	}
	dialWG.Wait()
	if e := dialErr.Load(); e != nil {
		fail(fmt.Errorf("dial: %w", *e))
	}
	deadline := time.Now().Add(*readyWait)
	for _, c := range clients {
		for c.frames.Load() < *ready && !c.done.Load() {
			if time.Now().After(deadline) {
				fail(fmt.Errorf("not every client read %d frames within %s", *ready, *readyWait))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	close(stalling)
	if *stallEvery > 0 {
		// The scenario: clients that have been behind for a while (their
		// backlog built up) when the server shuts down.
		time.Sleep(*lead)
	}
	fmt.Println("ready")

	<-ended
	all := make(chan struct{})
	go func() { readWG.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(*wait):
	}
	r := Report{Clients: *n, Codes: map[string]int{}}
	last := first.Load()
	for i, c := range clients {
		if !c.done.Load() {
			r.Unfinished++
			continue
		}
		if c.err != nil {
			r.Errors++
			if r.First == "" {
				r.First = "client " + strconv.Itoa(i) + ": " + c.err.Error()
			}
			continue
		}
		r.Codes[strconv.Itoa(c.code)]++
	}
	r.EndedInMs = (time.Now().UnixNano() - last) / 1e6
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fail(err)
	}
}

// readAll reads until the connection ends: the close code received, or the
// error that ended it without a close frame.
func readAll(conn *websocket.Conn, c *client, stalling <-chan struct{}) (int, error) {
	defer conn.Close()
	stalled := c.stall == 0
	for {
		if !stalled {
			select {
			case <-stalling:
				stalled = true
				time.Sleep(c.stall) // the behaviour under test: a client that stops reading
			default:
			}
		}
		_, r, err := conn.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, nil
			}
			return 0, err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return 0, err
		}
		c.frames.Add(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "closecount:", err)
	os.Exit(1)
}
