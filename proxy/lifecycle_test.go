package proxy_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/config"
	"wsproxy/internal/wstest"
)

func TestOversizeFrameCloses1009(t *testing.T) {
	h := start(t, func(c *config.Config) { c.MaxPayload = 1024 })
	c := h.dial(t)
	c.Send(t, `{"type":"ping","pad":"`+strings.Repeat("x", 2000)+`"}`)
	cl, _ := c.WaitClose(t, wait)
	if cl.Code != websocket.CloseMessageTooBig {
		t.Fatalf("close = %+v, want 1009", cl)
	}
	// A frame under the limit is fine on another connection.
	c2 := h.dial(t)
	c2.Send(t, `{"type":"ping","pad":"`+strings.Repeat("x", 900)+`"}`)
	c2.NextOfType(t, "pong", wait)
}

func TestInvalidUTF8Closes1007(t *testing.T) {
	h := start(t, nil)
	c := h.dial(t)
	if err := c.Conn.WriteMessage(websocket.TextMessage, []byte("{\"type\":\"ping\",\"x\":\"\xff\xfe\"}")); err != nil {
		t.Fatal(err)
	}
	cl, before := c.WaitClose(t, wait)
	if cl.Code != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("close = %+v, want 1007", cl)
	}
	for _, m := range before {
		if m.Type == "pong" {
			t.Fatal("invalid UTF-8 message was processed")
		}
	}
}

func TestMaxConnectionsCloses1013(t *testing.T) {
	h := start(t, func(c *config.Config) { c.MaxConnections = 2 })
	a, b := h.dial(t), h.dial(t)
	_ = a
	_ = b
	c := wstest.Dial(t, h.url)
	cl, msgs := c.WaitClose(t, wait)
	if cl.Code != websocket.CloseTryAgainLater || cl.Reason != "Server at capacity" || len(msgs) != 0 {
		t.Fatalf("third connection: close %+v after %d messages", cl, len(msgs))
	}
	// A slot freed is a slot available.
	_ = a.Conn.Close()
	wstest.Eventually(t, wait, "slot released", func() bool { return h.srv.Pool().Len() == 1 })
	h.dial(t)
}

func TestHeartbeatPingAndIdleTimeout(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.HeartbeatInterval = 50 * time.Millisecond
		c.ConnectionTimeout = 300 * time.Millisecond
	})
	// A live client answers pings (the library does it) and stays.
	var pings atomic.Int64
	live := wstest.DialWith(t, h.url, func(c *websocket.Conn) {
		c.SetPingHandler(func(data string) error {
			pings.Add(1)
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
	})
	live.NextOfType(t, "welcome", wait)
	// A dead client never answers.
	dead := wstest.DialWith(t, h.url, func(c *websocket.Conn) { c.SetPingHandler(func(string) error { return nil }) })

	cl, _ := dead.WaitClose(t, wait)
	if cl.Err == nil {
		t.Fatal("silent client not closed")
	}
	if pings.Load() == 0 {
		t.Fatal("no protocol ping received")
	}
	live.Send(t, `{"type":"ping"}`)
	live.NextOfType(t, "pong", wait)
	// The dead client sees its socket close before the server has removed
	// it: poll.
	wstest.Eventually(t, wait, "one live connection", func() bool { return h.srv.Pool().Len() == 1 })
}

func TestClientPingGetsPongWithSamePayload(t *testing.T) {
	h := start(t, nil)
	got := make(chan string, 1)
	c := wstest.DialWith(t, h.url, func(c *websocket.Conn) {
		c.SetPongHandler(func(s string) error { got <- s; return nil })
	})
	if err := c.Conn.WriteControl(websocket.PingMessage, []byte("hello-123"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "hello-123" {
			t.Fatalf("pong payload %q", s)
		}
	case <-time.After(wait):
		t.Fatal("no pong")
	}
}

func TestClientCloseIsEchoed(t *testing.T) {
	h := start(t, nil)
	c := h.dial(t)
	if err := c.Conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	cl, _ := c.WaitClose(t, wait)
	if cl.Code != 4001 {
		t.Fatalf("echo = %+v, want 4001", cl)
	}
	wstest.Eventually(t, wait, "connection removed", func() bool { return h.srv.Pool().Len() == 0 })
}

func TestGracefulShutdownFlushesThenCloses1001(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Batch.FlushInterval = time.Hour })
	clients := []*wstest.Client{h.dial(t), h.dial(t), h.dial(t)}
	h.publishAll(t, feed)
	if q := h.srv.Pool().Stats().QueuedFrames; q != int64(len(feed)*len(clients)) {
		t.Fatalf("queued frames = %d, want %d held by the flush interval", q, len(feed)*len(clients))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.srv.Shutdown(ctx) }()
	for i, c := range clients {
		cl, before := c.WaitClose(t, wait)
		if cl.Code != websocket.CloseGoingAway || cl.Reason != "Server shutting down" {
			t.Fatalf("client %d: close %+v", i, cl)
		}
		if got := dataKeys(before); len(got) != len(feed) {
			t.Fatalf("client %d got %d queued messages before close, want %d", i, len(got), len(feed))
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := wstest.TryDial(h.url, nil); err == nil {
		t.Fatal("dial succeeded after shutdown")
	}
}
