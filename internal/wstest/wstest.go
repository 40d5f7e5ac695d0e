// Package wstest holds WebSocket client helpers for wsproxy's tests: a real
// client over loopback whose frames are read by a goroutine and awaited with
// deadlines, never with sleeps.
package wstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// Msg is one decoded server message.
type Msg struct {
	Raw     []byte
	Type    string
	Payload map[string]any
	Fields  map[string]any
}

// Close is how the server ended the connection.
type Close struct {
	Code   int
	Reason string
	Err    error
}

// Client is a WebSocket test client. Frames are read continuously.
type Client struct {
	Conn   *websocket.Conn
	msgs   chan Msg
	closed chan Close
}

// Dial connects to url (ws://host/ws...) and starts reading.
func Dial(t testing.TB, url string) *Client {
	t.Helper()
	c, err := TryDial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Conn.Close() })
	return c
}

// DialWith is Dial with a setup function run on the connection before
// reading starts (to install ping or pong handlers, say).
func DialWith(t testing.TB, url string, setup func(*websocket.Conn)) *Client {
	t.Helper()
	c, err := dial(url, nil, setup)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Conn.Close() })
	return c
}

// TryDial is Dial without a test: it returns the error.
func TryDial(url string, h http.Header) (*Client, error) { return dial(url, h, nil) }

func dial(url string, h http.Header, setup func(*websocket.Conn)) (*Client, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(url, h)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	if setup != nil {
		setup(conn)
	}
	c := &Client{Conn: conn, msgs: make(chan Msg, 100000), closed: make(chan Close, 1)}
	go c.read()
	return c, nil
}

func (c *Client) read() {
	for {
		mt, b, err := c.Conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.closed <- Close{Code: ce.Code, Reason: ce.Text, Err: err}
			} else {
				c.closed <- Close{Code: -1, Err: err}
			}
			close(c.msgs)
			return
		}
		if mt != websocket.TextMessage {
			continue
		}
		m := Msg{Raw: b}
		if err := json.Unmarshal(b, &m.Fields); err == nil {
			m.Type, _ = m.Fields["type"].(string)
			m.Payload, _ = m.Fields["payload"].(map[string]any)
		}
		c.msgs <- m
	}
}

// Send writes a text frame holding s.
func (c *Client) Send(t testing.TB, s string) {
	t.Helper()
	if err := c.Conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// Next returns the next message, failing the test after timeout.
func (c *Client) Next(t testing.TB, timeout time.Duration) Msg {
	t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			t.Fatalf("connection closed while waiting for a message: %+v", c.peekClose())
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %s", timeout)
	}
	return Msg{}
}

// NextOfType skips messages until one of type typ arrives.
func (c *Client) NextOfType(t testing.TB, typ string, timeout time.Duration) Msg {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %q message within %s", typ, timeout)
		}
		m := c.Next(t, left)
		if m.Type == typ {
			return m
		}
	}
}

// TryNext returns the next message or false after timeout (or on close).
func (c *Client) TryNext(timeout time.Duration) (Msg, bool) {
	select {
	case m, ok := <-c.msgs:
		return m, ok
	case <-time.After(timeout):
		return Msg{}, false
	}
}

// Drain returns every message that arrives until none has come for quiet.
func (c *Client) Drain(quiet time.Duration) []Msg {
	var out []Msg
	for {
		m, ok := c.TryNext(quiet)
		if !ok {
			return out
		}
		out = append(out, m)
	}
}

// WaitClose waits for the server to close the connection, collecting the
// messages that came before the close.
func (c *Client) WaitClose(t testing.TB, timeout time.Duration) (Close, []Msg) {
	t.Helper()
	var before []Msg
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return <-c.closed, before
			}
			before = append(before, m)
		case <-deadline:
			t.Fatalf("connection not closed within %s", timeout)
		}
	}
}

func (c *Client) peekClose() Close {
	select {
	case cl := <-c.closed:
		c.closed <- cl
		return cl
	default:
		return Close{}
	}
}

// Eventually polls cond every few milliseconds until it holds or timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Str returns a nested string field ("payload.exchange").
func (m Msg) Str(path ...string) string {
	var cur any = m.Fields
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	switch v := cur.(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(int64(v))
	}
	return ""
}
