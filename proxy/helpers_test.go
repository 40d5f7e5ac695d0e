package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/proxytest"
	"wsproxy/internal/wstest"
	"wsproxy/proxy"
)

const wait = 5 * time.Second

type harness struct {
	srv *proxy.Server
	in  *dataflow.InProcess
	url string
}

func start(t testing.TB, mut func(*config.Config)) *harness {
	t.Helper()
	cfg := config.Config{}
	if mut != nil {
		mut(&cfg)
	}
	return startWith(t, cfg, zerolog.Nop())
}

// startWith serves cfg, fed by an in-process source, logging to log.
func startWith(t testing.TB, cfg config.Config, log zerolog.Logger) *harness {
	t.Helper()
	n := proxytest.Start(t, cfg, log, nil)
	return &harness{srv: n.Srv, in: n.In, url: n.URL()}
}

// dial connects and consumes the welcome frame.
func (h *harness) dial(t testing.TB) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, h.url)
	if m := c.Next(t, wait); m.Type != "welcome" {
		t.Fatalf("first frame = %s, want welcome", m.Raw)
	}
	return c
}

func (h *harness) publish(t testing.TB, exchange, typ, symbol string, ts int64) {
	t.Helper()
	md := dataflow.MarketData{Exchange: exchange, Type: typ, Symbol: symbol, Timestamp: ts,
		Data: []byte(fmt.Sprintf(`{"seq":%d}`, ts))}
	if err := h.in.Output(context.Background(), md); err != nil {
		t.Fatal(err)
	}
}

// sync sends a ping and waits for the pong: every reply queued before it has
// arrived, and the server has processed every message sent before it.
func syncPing(t testing.TB, c *wstest.Client) []wstest.Msg {
	t.Helper()
	c.Send(t, `{"type":"ping"}`)
	var before []wstest.Msg
	for {
		m := c.Next(t, wait)
		if m.Type == "pong" {
			return before
		}
		before = append(before, m)
	}
}
