// Command floorhub is the load tool's floor: the least a WebSocket push
// server can do on this kernel. It answers the handshake by hand, sends one
// fixed welcome frame, never reads from a client again, and for every
// message read from Redis Pub/Sub builds one pre-framed text frame and writes
// those same bytes to every socket from 2 goroutines (each owning half of the
// sockets). No filters, no queues, no pings, no deadlines, no close
// handling: what it costs is what one socket write per delivery costs, so
// tools/wsload reports every other target as a ratio to it. It is a
// yardstick, not a server: a client that stops reading stalls its writer.
package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wsproxy/internal/rlimit"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// writers is the number of goroutines that write every frame.
const writers = 2

func main() {
	listen := flag.String("listen", "127.0.0.1:8091", "address of /ws")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	pattern := flag.String("pattern", "market-data-*", "Pub/Sub pattern")
	flag.Parse()
	rlimit.RaiseOpenFiles(zerolog.Nop())

	var f floor
	for i := range f.frames {
		f.frames[i] = make(chan []byte, 4096)
		go f.writeLoop(i)
	}

	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps := rdb.PSubscribe(ctx, *pattern)
	if _, err := ps.Receive(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "floorhub: psubscribe:", err)
		os.Exit(1)
	}
	go func() {
		for m := range ps.Channel(redis.WithChannelSize(4096)) {
			fr := dataFrame(m.Payload)
			for _, ch := range f.frames {
				ch <- fr
			}
		}
	}()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floorhub:", err)
		os.Exit(1)
	}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go f.handshake(nc)
		}
	}()
	fmt.Fprintln(os.Stderr, "floorhub listening on", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = ln.Close()
	_ = ps.Close()
	fmt.Fprintf(os.Stderr, "floorhub: %d connections, %d write errors\n", f.n.Load(), f.writeErrs.Load())
}

// floor holds the sockets, split over the writers by arrival order.
type floor struct {
	mu        sync.Mutex
	conns     [writers][]net.Conn
	frames    [writers]chan []byte
	n         atomic.Uint64
	writeErrs atomic.Uint64
}

func (f *floor) writeLoop(i int) {
	for fr := range f.frames[i] {
		f.mu.Lock()
		conns := f.conns[i]
		f.mu.Unlock()
		for _, c := range conns {
			if _, err := c.Write(fr); err != nil {
				f.writeErrs.Add(1)
			}
		}
	}
}

// wsGUID is RFC 6455's key suffix.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// handshake reads the upgrade request, answers 101 and the welcome frame,
// then hands the socket to a writer and never reads it again.
func (f *floor) handshake(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewReader(bufio.NewReaderSize(nc, 1024))
	if _, err := tp.ReadLine(); err != nil {
		nc.Close()
		return
	}
	h, err := tp.ReadMIMEHeader()
	key := h.Get("Sec-WebSocket-Key")
	if err != nil || key == "" || !strings.EqualFold(h.Get("Upgrade"), "websocket") {
		_, _ = nc.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
		nc.Close()
		return
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	n := f.n.Add(1)
	now := time.Now().UnixMilli()
	welcome := `{"type":"welcome","payload":{"connectionId":"` + strconv.FormatUint(n, 10) + `","serverTime":` +
		strconv.FormatInt(now, 10) + `},"timestamp":` + strconv.FormatInt(now, 10) + `}`
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	out := appendTextFrame([]byte(resp), []byte(welcome))
	if _, err := nc.Write(out); err != nil {
		nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	f.mu.Lock()
	i := int(n % writers)
	// Copy on append: a writer may be ranging over the old slice.
	f.conns[i] = append(f.conns[i][:len(f.conns[i]):len(f.conns[i])], nc)
	f.mu.Unlock()
}

// dataFrame wraps a published message in the legacy data shape's outer
// fields and frames it once for every recipient.
func dataFrame(raw string) []byte {
	typ := "trade"
	if i := strings.Index(raw, `"type":"`); i >= 0 {
		if j := strings.IndexByte(raw[i+8:], '"'); j >= 0 {
			typ = raw[i+8 : i+8+j]
		}
	}
	body := make([]byte, 0, len(raw)+64)
	body = append(body, `{"type":"`...)
	body = append(body, typ...)
	body = append(body, `","payload":`...)
	body = append(body, raw...)
	body = append(body, `,"timestamp":`...)
	body = strconv.AppendInt(body, time.Now().UnixMilli(), 10)
	body = append(body, '}')
	return appendTextFrame(make([]byte, 0, len(body)+10), body)
}

// appendTextFrame appends an unmasked, final text frame holding p.
func appendTextFrame(b, p []byte) []byte {
	b = append(b, 0x81)
	switch n := len(p); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}
