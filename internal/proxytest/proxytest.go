// Package proxytest starts a wsproxy server for tests: on a loopback port,
// fed by an in-process source, shut down when the test ends. It is the one
// harness behind the proxy and admin tests.
package proxytest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/proxy"
)

// Wait bounds every wait of the harness.
const Wait = 5 * time.Second

// Node is a running server.
type Node struct {
	Srv *proxy.Server
	// In is the in-process source ("test") every test publishes through.
	In   *dataflow.InProcess
	Addr string // host:port
}

// URL is the WebSocket endpoint.
func (n *Node) URL() string { return "ws://" + n.Addr + "/ws" }

// Start serves cfg, logging to log, fed by an in-process source and the
// extra sources. setup (may be nil) registers routes before the server
// starts. It returns once the in-process source is attached.
func Start(t testing.TB, cfg config.Config, log zerolog.Logger, setup func(*proxy.Server), sources ...dataflow.Source) *Node {
	t.Helper()
	in := dataflow.NewInProcess("test")
	srv, err := proxy.New(cfg, log, append([]dataflow.Source{in}, sources...)...)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Wait)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	wstest.Eventually(t, Wait, "source attached", func() bool { return in.Status().Connected })
	return &Node{Srv: srv, In: in, Addr: ln.Addr().String()}
}
