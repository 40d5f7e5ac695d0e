// Command naivehub is the load tool's baseline: the textbook gorilla-style
// WebSocket hub (a goroutine and a buffered channel per connection, one
// WriteMessage per message, a broadcast loop over a map under a mutex), fed by
// the same Redis Pub/Sub channels as wsproxy and speaking the same legacy JSON
// shapes, so that tools/wsload measures both identically. It is a yardstick,
// not a product: it implements only what the load tool uses (welcome,
// subscribe with exchange/symbols/dataTypes filters, data frames).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wsproxy/internal/rlimit"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address of /ws")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	pattern := flag.String("pattern", "market-data-*", "Pub/Sub pattern")
	flag.Parse()
	rlimit.RaiseOpenFiles(zerolog.Nop())

	h := &hub{clients: make(map[*client]struct{})}
	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	ctx, cancel := context.WithCancel(context.Background())
	ps := rdb.PSubscribe(ctx, *pattern)
	if _, err := ps.Receive(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "naivehub: psubscribe:", err)
		os.Exit(1)
	}
	go func() {
		for m := range ps.Channel(redis.WithChannelSize(4096)) {
			h.publish([]byte(m.Payload))
		}
	}()

	upgrader := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &client{conn: conn, send: make(chan []byte, 256), id: strconv.FormatUint(h.seq.Add(1), 10)}
		now := time.Now().UnixMilli()
		c.send <- []byte(fmt.Sprintf(`{"type":"welcome","payload":{"connectionId":%q,"serverTime":%d},"timestamp":%d}`, c.id, now, now))
		h.mu.Lock()
		h.clients[c] = struct{}{}
		h.mu.Unlock()
		go c.writePump()
		go c.readPump(h)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "naivehub:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintln(os.Stderr, "naivehub listening on", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	cancel()
	_ = ps.Close()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	fmt.Fprintf(os.Stderr, "naivehub: dropped %d\n", h.dropped.Load())
}

type filter struct {
	exchanges, symbols, types []string
}

func has(list []string, v string) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func normSymbol(s string) string {
	return strings.NewReplacer("/", "", "-", "", "_", "").Replace(strings.ToUpper(s))
}

type client struct {
	conn    *websocket.Conn
	send    chan []byte
	id      string
	mu      sync.Mutex
	filters []filter
}

type hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	seq     atomic.Uint64
	dropped atomic.Uint64
}

type marketData struct {
	Exchange  string          `json:"exchange"`
	Symbol    string          `json:"symbol"`
	Type      string          `json:"type"`
	Timestamp int64           `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

type dataPayload struct {
	Type      string          `json:"type"`
	Exchange  string          `json:"exchange"`
	Symbol    string          `json:"symbol"`
	Data      json.RawMessage `json:"data"`
	Timestamp int64           `json:"timestamp"`
}

type dataMsg struct {
	Type      string      `json:"type"`
	Payload   dataPayload `json:"payload"`
	Timestamp int64       `json:"timestamp"`
}

// publish encodes once and offers the bytes to every matching client,
// dropping (and counting) when a client's channel is full.
func (h *hub) publish(raw []byte) {
	var md marketData
	if err := json.Unmarshal(raw, &md); err != nil || md.Exchange == "" {
		return
	}
	out, err := json.Marshal(dataMsg{Type: md.Type, Payload: dataPayload{Type: md.Type, Exchange: md.Exchange, Symbol: md.Symbol, Data: md.Data, Timestamp: md.Timestamp}, Timestamp: time.Now().UnixMilli()})
	if err != nil {
		return
	}
	ex, typ, sym := strings.ToLower(md.Exchange), strings.ToLower(md.Type), normSymbol(md.Symbol)
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if !c.wants(ex, typ, sym) {
			continue
		}
		select {
		case c.send <- out:
		default:
			h.dropped.Add(1)
		}
	}
}

func (c *client) wants(ex, typ, sym string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.filters) == 0 {
		return true
	}
	for _, f := range c.filters {
		if has(f.exchanges, ex) && has(f.symbols, sym) && has(f.types, typ) {
			return true
		}
	}
	return false
}

func (c *client) writePump() {
	ping := time.NewTicker(30 * time.Second)
	defer func() {
		ping.Stop()
		_ = c.conn.Close()
	}()
	for {
		select {
		case msg, ok := <-c.send:
			if !ok {
				_ = c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "Server shutdown"))
				return
			}
			_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-ping.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

type clientMsg struct {
	Type    string `json:"type"`
	Payload struct {
		Exchange  []string `json:"exchange"`
		Symbols   []string `json:"symbols"`
		DataTypes []string `json:"dataTypes"`
	} `json:"payload"`
}

func (c *client) readPump(h *hub) {
	defer func() {
		h.mu.Lock()
		if _, ok := h.clients[c]; ok {
			delete(h.clients, c)
			close(c.send)
		}
		h.mu.Unlock()
	}()
	c.conn.SetReadLimit(1 << 20)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		var m clientMsg
		if json.Unmarshal(msg, &m) != nil {
			continue
		}
		now := time.Now().UnixMilli()
		var reply []byte
		switch m.Type {
		case "ping":
			reply = []byte(fmt.Sprintf(`{"type":"pong","timestamp":%d}`, now))
		case "subscribe":
			f := filter{types: lower(m.Payload.DataTypes), exchanges: lower(m.Payload.Exchange)}
			for _, s := range m.Payload.Symbols {
				f.symbols = append(f.symbols, normSymbol(s))
			}
			c.mu.Lock()
			c.filters = append(c.filters, f)
			id := strconv.Itoa(len(c.filters))
			c.mu.Unlock()
			spec, _ := json.Marshal(map[string][]string{"exchange": nonNil(m.Payload.Exchange), "symbols": nonNil(m.Payload.Symbols), "dataTypes": nonNil(m.Payload.DataTypes)})
			reply = []byte(fmt.Sprintf(`{"type":"subscribed","payload":{"filterId":%q,"filter":%s},"timestamp":%d}`, id, spec, now))
		default:
			continue
		}
		h.mu.Lock()
		if _, ok := h.clients[c]; ok {
			select {
			case c.send <- reply:
			default:
			}
		}
		h.mu.Unlock()
	}
}

func lower(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		out = append(out, strings.ToLower(s))
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
