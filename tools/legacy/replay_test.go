package legacy_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"

	"wsproxy/dataflow"
	"wsproxy/internal/transcript"
	"wsproxy/internal/wstest"
	"wsproxy/tools/legacy"
)

// legacyInstance is a fresh reference server fed in process.
type legacyInstance struct {
	srv  *legacy.Server
	in   *dataflow.InProcess
	addr string
}

func (li *legacyInstance) URL(path string) string { return "ws://" + li.addr + path }

func (li *legacyInstance) Inject(t testing.TB, msgs []json.RawMessage) {
	t.Helper()
	for _, m := range msgs {
		md, err := dataflow.DecodeWith(m, "binance") // the recorder's adapter name
		if err != nil {
			t.Fatalf("inject %s: %v", m, err)
		}
		if err := li.in.Output(context.Background(), md); err != nil {
			t.Fatal(err)
		}
	}
}

func (li *legacyInstance) Forwarded(testing.TB) uint64 { return li.srv.Stats().Broadcast }

func (li *legacyInstance) Shutdown(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := li.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReplayTranscriptsA replays every recorded scenario of the deployed
// legacy server (A) against the reference server: it must reproduce the
// recordings with no difference kept (scenario 10, the 100-second heartbeat
// run, is covered by TestHeartbeatDropsSilently).
func TestReplayTranscriptsA(t *testing.T) {
	for n := 1; n <= 9; n++ {
		phases, err := transcript.Load("A", n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range phases {
			ph := &phases[i]
			t.Run(ph.Name(), func(t *testing.T) {
				in := dataflow.NewInProcess("replay")
				srv, err := legacy.New(legacy.Config{}, zerolog.Nop(), in)
				if err != nil {
					t.Fatal(err)
				}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				if err := srv.Serve(ln); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), wait)
					defer cancel()
					_ = srv.Shutdown(ctx)
				})
				wstest.Eventually(t, wait, "source attached", func() bool { return in.Status().Connected })
				got := transcript.Replay(t, ph, &legacyInstance{srv: srv, in: in, addr: ln.Addr().String()}, transcript.Options{})
				var problems []string
				for _, c := range ph.Clients() {
					problems = append(problems, transcript.Compare(ph, c, ph.Expected(c), got[c], nil)...)
				}
				if len(problems) > 0 {
					t.Errorf("%s %s:\n%s", ph.Name(), ph.Title, strings.Join(problems, "\n"))
				}
			})
		}
	}
}

// TestHeartbeatDropsSilently is scenario 10 of A at a shorter scale: a
// client that answers protocol pings keeps receiving; one that never
// answers and sends nothing is dropped from the registry without a close
// frame (no more data, its socket stays open); one that sends application
// pings is kept (client frames count as activity).
func TestHeartbeatDropsSilently(t *testing.T) {
	h := start(t, legacy.Config{HeartbeatInterval: 100 * time.Millisecond, ConnectionTimeout: 250 * time.Millisecond})
	answering := h.dial(t)
	silent := wstest.DialWith(t, "ws://"+h.addr+"/ws", func(ws *websocket.Conn) { ws.SetPingHandler(func(string) error { return nil }) })
	silent.NextOfType(t, "welcome", wait)
	talking := wstest.DialWith(t, "ws://"+h.addr+"/ws", func(ws *websocket.Conn) { ws.SetPingHandler(func(string) error { return nil }) })
	talking.NextOfType(t, "welcome", wait)
	wstest.Eventually(t, wait, "the silent client dropped", func() bool {
		talking.Send(t, `{"type":"ping"}`)
		talking.NextOfType(t, "pong", wait)
		return h.srv.Stats().Clients == 2
	})
	h.publish(t, "binance", "trade", "BTC/USDT", 7)
	answering.NextOfType(t, "trade", wait)
	talking.NextOfType(t, "trade", wait)
	silent.Send(t, `{"type":"ping"}`) // still open: A kept the socket
	if m := silent.Next(t, wait); m.Type != "pong" {
		t.Fatalf("dropped client got %s before its pong, want no data", m.Raw)
	}
}
