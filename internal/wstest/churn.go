package wstest

import (
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// churner is a client that repeats one request every period and reads
// everything it is sent as fast as it can, discarding the bytes unparsed.
type churner struct {
	conn *websocket.Conn
	stop chan struct{}
	wg   sync.WaitGroup
}

// StartChurners connects n clients, each of which sends setup (if not
// empty) and then the frames of script in turn, one every period (the
// clients' phases spread over the period), until stopped.
func StartChurners(t testing.TB, url string, n int, period time.Duration, setup string, script ...string) func() {
	t.Helper()
	var cs []*churner
	for i := 0; i < n; i++ {
		conn, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if setup != "" {
			// The setup done (the server answers the ping after it) before
			// the measurement.
			for _, m := range []string{setup, `{"type":"ping"}`} {
				if err := conn.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			for {
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, b, err := conn.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), `"type":"pong"`) {
					break
				}
			}
			_ = conn.SetReadDeadline(time.Time{})
		}
		phase := period * time.Duration(i) / time.Duration(n)
		c := &churner{conn: conn, stop: make(chan struct{})}
		cs = append(cs, c)
		c.wg.Add(2)
		go func() {
			defer c.wg.Done()
			// Bytes, not frames: what the server sends is thrown away
			// unparsed, so that churn costs the test process (which also
			// measures a bystander's latency) as little as it can.
			_, _ = io.Copy(io.Discard, conn.NetConn())
		}()
		go func() {
			defer c.wg.Done()
			select { // spread the clients over the period
			case <-c.stop:
				return
			case <-time.After(phase):
			}
			tick := time.NewTicker(period)
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-c.stop:
					return
				case <-tick.C:
				}
				if err := conn.WriteMessage(websocket.TextMessage, []byte(script[k%len(script)])); err != nil {
					return
				}
			}
		}()
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			for _, c := range cs {
				close(c.stop)
			}
			for _, c := range cs {
				_ = c.conn.Close()
				c.wg.Wait()
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
