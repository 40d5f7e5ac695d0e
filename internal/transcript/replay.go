package transcript

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// Instance is one running server under test, fresh for a phase.
type Instance interface {
	// URL returns the ws:// URL of path ("/ws?token=abc").
	URL(path string) string
	// Inject hands msgs, in order, to the server's pipeline.
	Inject(t testing.TB, msgs []json.RawMessage)
	// Forwarded is how many pipeline messages the server has queued to
	// every recipient; the replay waits for it before probing clients.
	Forwarded(t testing.TB) uint64
	// Shutdown stops the server gracefully and returns once it has stopped.
	Shutdown(t testing.TB)
}

// Options tune a replay.
type Options struct {
	// Wait bounds every wait of the replay. 0: 10s.
	Wait time.Duration
	// Silent lists clients that never answer protocol pings (scenario 10).
	// They are not probed either: a probe would count as their activity.
	Silent map[int]bool
	// TimeScale > 0 paces the replay: each client frame and inject happens
	// at its recorded t_ms times TimeScale after the phase starts, for
	// scenarios whose subject is time (the heartbeat of scenario 10).
	// 0: as fast as the barriers allow.
	TimeScale float64
}

// wrongPaths are the paths of the refused connections of phase 1.3, in
// client order (the README's phase table).
var wrongPaths = []string{"/", "/ws/", "/other"}

// Replay runs phase p against inst: the same client frames and pipeline
// messages in the recorded order. Before each client frame, each inject and
// each new connection the replay waits until the server has queued every message injected so
// far and every open client has received the answer to a protocol ping
// (so earlier frames have been processed and earlier data delivered).
// It returns what each client received.
func Replay(t testing.TB, p *Phase, inst Instance, opt Options) map[int][]Frame {
	t.Helper()
	if opt.Wait == 0 {
		opt.Wait = 10 * time.Second
	}
	r := &replay{t: t, p: p, inst: inst, opt: opt, clients: map[int]*client{}}
	r.run()
	out := map[int][]Frame{}
	for _, c := range p.Clients() {
		if cl := r.clients[c]; cl != nil {
			out[c] = Flatten(cl.frames())
		} else {
			out[c] = nil
		}
	}
	return out
}

type replay struct {
	t        testing.TB
	p        *Phase
	inst     Instance
	opt      Options
	clients  map[int]*client
	injected uint64
	barriers int
	stopped  bool
}

func (r *replay) run() {
	recs := r.p.Records
	begin := time.Now()
	for i := 0; i < len(recs); i++ {
		rec := recs[i]
		if r.opt.TimeScale > 0 && (rec.Dir == "in" || rec.Dir == "inject" || rec.Dir == "open") {
			// Pacing the client's side of a timed scenario, not waiting for
			// the server: the barriers do that.
			time.Sleep(time.Until(begin.Add(time.Duration(rec.TMs * r.opt.TimeScale * float64(time.Millisecond)))))
		}
		switch rec.Dir {
		case "open":
			var v struct {
				Path string `json:"path"`
			}
			_ = json.Unmarshal(rec.Frame, &v)
			// What came before is not this client's: earlier messages
			// delivered, and earlier client frames processed (a getStats
			// sent just before must not count this connection).
			r.barrier()
			c := r.dial(rec.Client, v.Path)
			if c != nil && r.p.ID != "2.2" && r.p.ID != "9.2" {
				c.waitFrames(r.t, 1, r.opt.Wait)
			}
		case "close":
			var v struct {
				Initiator string `json:"initiator"`
			}
			_ = json.Unmarshal(rec.Frame, &v)
			if v.Initiator == "connect-failed" && r.clients[rec.Client] == nil {
				path := "/ws"
				if r.p.ID == "1.3" && rec.Client <= len(wrongPaths) {
					path = wrongPaths[rec.Client-1]
				}
				r.dial(rec.Client, path)
			}
		case "in":
			c := r.clients[rec.Client]
			if c == nil || c.ended() {
				continue
			}
			if rec.Opcode == 10 && !r.opt.Silent[rec.Client] {
				continue // the client's automatic pong already answered
			}
			r.barrier()
			r.send(c, rec)
		case "inject":
			var batch []json.RawMessage
			for ; i < len(recs) && recs[i].Dir == "inject"; i++ {
				for range max(recs[i].Repeat, 1) {
					batch = append(batch, recs[i].Frame)
				}
			}
			i--
			r.barrier()
			r.inst.Inject(r.t, batch)
			r.injected += uint64(len(batch))
		case "server":
			var v struct {
				Action string `json:"action"`
			}
			_ = json.Unmarshal(rec.Frame, &v)
			if v.Action == "shutdown" {
				r.waitForwarded()
				r.inst.Shutdown(r.t)
				r.stopped = true
				for _, c := range r.clients {
					c.waitEnd(r.t, r.opt.Wait)
				}
			}
		}
	}
	r.barrier()
	for _, c := range r.clients {
		c.waitEnd(r.t, r.opt.Wait)
	}
}

func (r *replay) waitForwarded() {
	deadline := time.Now().Add(r.opt.Wait)
	for r.inst.Forwarded(r.t) < r.injected {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: server forwarded %d of %d injected messages", r.p.Name(), r.inst.Forwarded(r.t), r.injected)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// barrier makes sure everything sent so far has been processed: the server
// has queued every injected message, and each open client has received the
// pong to a protocol ping sent after it (frames to one connection keep
// their order).
func (r *replay) barrier() {
	if r.stopped {
		return
	}
	r.waitForwarded()
	r.barriers++
	tag := "barrier-" + strconv.Itoa(r.barriers)
	var wait []*client
	for _, c := range r.clients {
		if c.ended() || c.silent {
			continue
		}
		if err := c.ws.WriteControl(websocket.PingMessage, []byte(tag), time.Now().Add(r.opt.Wait)); err == nil {
			wait = append(wait, c)
		}
	}
	for _, c := range wait {
		c.waitBarrier(r.t, tag, r.opt.Wait)
	}
}

func (r *replay) dial(n int, path string) *client {
	d := websocket.Dialer{HandshakeTimeout: r.opt.Wait}
	ws, _, err := d.Dial(r.inst.URL(path), nil)
	c := &client{n: n, done: make(chan struct{}), silent: r.opt.Silent[n]}
	if err != nil {
		c.add(Frame{Kind: "connect-failed"})
		close(c.done)
		r.clients[n] = c
		return nil
	}
	ws.SetReadLimit(64 << 20)
	c.ws = ws
	r.clients[n] = c
	r.t.Cleanup(func() { _ = ws.Close() })
	ws.SetPingHandler(func(data string) error {
		c.add(Frame{Kind: "ping", Payload: data})
		if c.silent {
			return nil
		}
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	ws.SetPongHandler(func(data string) error {
		if strings.HasPrefix(data, "barrier-") {
			c.mu.Lock()
			c.barrier = data
			c.mu.Unlock()
			return nil
		}
		c.add(Frame{Kind: "pong", Payload: data})
		return nil
	})
	go c.read()
	return c
}

func (r *replay) send(c *client, rec Record) {
	deadline := time.Now().Add(r.opt.Wait)
	_ = c.ws.SetWriteDeadline(deadline)
	switch rec.Opcode {
	case 1:
		var v struct {
			Text   *string `json:"text"`
			Elided bool    `json:"elided"`
			Prefix string  `json:"text_prefix"`
		}
		_ = json.Unmarshal(rec.Frame, &v)
		var b []byte
		switch {
		case rec.NonJSON && v.Text != nil:
			b = []byte(*v.Text)
		case v.Elided:
			b = padded(2097152)
		default:
			b = r.substituteIDs(c, rec.Frame)
		}
		_ = c.ws.WriteMessage(websocket.TextMessage, b)
	case 2:
		var v struct {
			Hex string `json:"binary_hex"`
		}
		_ = json.Unmarshal(rec.Frame, &v)
		b, _ := hex.DecodeString(v.Hex)
		_ = c.ws.WriteMessage(websocket.BinaryMessage, b)
	case 9, 10:
		var v struct {
			Ping string `json:"ping_payload_hex"`
			Pong string `json:"pong_payload_hex"`
		}
		_ = json.Unmarshal(rec.Frame, &v)
		op, hx := websocket.PingMessage, v.Ping
		if rec.Opcode == 10 {
			op, hx = websocket.PongMessage, v.Pong
		}
		b, _ := hex.DecodeString(hx)
		_ = c.ws.WriteControl(op, b, deadline)
	case 8:
		var v struct {
			Code int `json:"code"`
		}
		_ = json.Unmarshal(rec.Frame, &v)
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(v.Code, ""), deadline)
		c.waitEnd(r.t, r.opt.Wait)
	}
}

// substituteIDs replaces a recorded filterId (B's) by the one the server
// under test returned for the same subscription, in order of subscription.
func (r *replay) substituteIDs(c *client, frame json.RawMessage) []byte {
	if !strings.Contains(string(frame), `"filterId"`) {
		return frame
	}
	var recorded []string
	for _, f := range r.p.Expected(c.n) {
		if f.Type() == "subscribed" {
			if id := f.Str("payload.filterId"); id != "" {
				recorded = append(recorded, id)
			}
		}
	}
	var got []string
	for _, f := range Flatten(c.frames()) {
		if f.Type() == "subscribed" {
			if id := f.Str("payload.filterId"); id != "" {
				got = append(got, id)
			}
		}
	}
	s := string(frame)
	for i, id := range recorded {
		if i < len(got) {
			s = strings.ReplaceAll(s, strconv.Quote(id), strconv.Quote(got[i]))
		}
	}
	return []byte(s)
}

// padded is the 2 MiB frame of phase 7.10: {"type":"ping","pad":"xxx…"}.
func padded(n int) []byte {
	head, tail := `{"type":"ping","pad":"`, `"}`
	b := make([]byte, 0, n)
	b = append(b, head...)
	for len(b) < n-len(tail) {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

// client is one replayed client; its frames are read by a goroutine.
type client struct {
	n      int
	ws     *websocket.Conn
	silent bool
	done   chan struct{}

	mu      sync.Mutex
	got     []Frame
	barrier string
}

func (c *client) add(f Frame) {
	c.mu.Lock()
	c.got = append(c.got, f)
	c.mu.Unlock()
}

func (c *client) frames() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.got...)
}

func (c *client) read() {
	defer close(c.done)
	for {
		mt, b, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.add(Frame{Kind: "close", Code: ce.Code, Reason: ce.Text})
			} else {
				c.add(Frame{Kind: "close", Code: websocket.CloseAbnormalClosure})
			}
			return
		}
		if mt == websocket.TextMessage {
			c.add(TextFrame(b))
		} else {
			c.add(Frame{Kind: "binary", Raw: b})
		}
	}
}

func (c *client) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *client) waitEnd(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		t.Fatalf("client %d: connection not closed within %s", c.n, d)
	}
}

func (c *client) waitFrames(t testing.TB, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		got := len(c.got)
		c.mu.Unlock()
		if got >= n || c.ended() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %d: %d frames within %s, want %d", c.n, got, d, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (c *client) waitBarrier(t testing.TB, tag string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		ok := c.barrier == tag
		c.mu.Unlock()
		if ok || c.ended() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %d: no pong to %s within %s", c.n, tag, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
