package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
)

// stalledRcvBuf is the receive buffer of clients that stop reading: small,
// so that the server's writes back up after a few MB at most.
const stalledRcvBuf = 4096

// fillerPad makes filler trades 8 KiB, so that a stalled client's socket
// buffers fill after a few hundred of them.
var fillerPad = strings.Repeat("x", 8<<10)

// send publishes one message with data as its payload's data.
func (h *harness) send(t testing.TB, exchange, typ, symbol, data string) {
	t.Helper()
	md := dataflow.MarketData{Exchange: exchange, Type: typ, Symbol: symbol, Timestamp: time.Now().UnixMilli(), Data: []byte(data)}
	if err := h.in.Output(context.Background(), md); err != nil {
		t.Fatal(err)
	}
}

// dispatched waits until the dispatcher has handled n messages in all.
func (h *harness) dispatched(t testing.TB, n uint64) {
	t.Helper()
	wstest.Eventually(t, wait, fmt.Sprintf("%d messages dispatched", n), func() bool {
		return h.srv.Dispatcher().Stats().Forwarded >= n
	})
}

// poolConn returns the server side of the client whose local address is
// local, once its welcome has been written (its subscriptions are in place
// by then).
func (h *harness) poolConn(t testing.TB, local net.Addr) *pool.Conn {
	t.Helper()
	var found *pool.Conn
	wstest.Eventually(t, wait, "connection registered", func() bool {
		h.srv.Pool().Each(func(c *pool.Conn) {
			if c.Remote() == local.String() && c.Stats().BytesSent > 0 {
				found = c
			}
		})
		return found != nil
	})
	return found
}

// saturate publishes filler trades until c's writer is stuck on a client
// that does not read and its queue is full; it returns the messages
// published so far. Between bursts it lets the healthy connections take
// what they were sent.
func saturate(t testing.TB, h *harness, c *pool.Conn, published uint64, healthy ...*pool.Conn) uint64 {
	t.Helper()
	max := h.srv.Pool().Config().QueueMaxMessages
	lastBytes, still := uint64(0), 0
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		for j := 0; j < 50; j++ {
			h.send(t, "fill", "trade", "FILL/USDT", `{"pad":"`+fillerPad+`"}`)
		}
		published += 50
		h.dispatched(t, published)
		drained(t, healthy...)
		st := c.Stats()
		// Nothing written while twice 50 more frames were queued: the
		// writer is blocked on a full socket.
		if st.QueueDepth >= max && st.SaturatedSince != 0 && st.BytesSent == lastBytes {
			if still++; still == 2 {
				return published
			}
		} else {
			still = 0
		}
		lastBytes = st.BytesSent
		if time.Now().After(deadline) {
			t.Fatalf("connection not saturated after %d fillers: %+v", published, st)
		}
	}
}

// drained waits until none of conns has frames queued.
func drained(t testing.TB, conns ...*pool.Conn) {
	t.Helper()
	wstest.Eventually(t, wait, "queues drained", func() bool {
		for _, c := range conns {
			if c.Stats().QueueDepth > 0 {
				return false
			}
		}
		return true
	})
}

// dataMsg is a data frame as a test compares it: type|symbol|data.
type dataMsg string

func decodeData(t testing.TB, b []byte) dataMsg {
	t.Helper()
	var m struct {
		Type    string `json:"type"`
		Payload struct {
			Symbol string          `json:"symbol"`
			Data   json.RawMessage `json:"data"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("bad frame %.100s: %v", b, err)
	}
	return dataMsg(m.Type + "|" + m.Payload.Symbol + "|" + string(m.Payload.Data))
}

func isFiller(m dataMsg) bool { return strings.HasPrefix(string(m), "trade|FILL/USDT|") }

// readAfterFillers reads r until n non-filler data frames have arrived and
// returns them; control frames and the welcome are skipped.
func readAfterFillers(t testing.TB, r *wstest.Raw, n int) []dataMsg {
	t.Helper()
	var out []dataMsg
	deadline := time.Now().Add(wait)
	for len(out) < n {
		f, err := r.ReadFrame(deadline)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(out), n, err)
		}
		if f.Op != wstest.OpText || bytes.Contains(f.Payload[:min(len(f.Payload), 20)], []byte(`"welcome"`)) {
			continue
		}
		m := decodeData(t, f.Payload)
		if isFiller(m) {
			if len(out) > 0 {
				t.Fatalf("filler after %d fresh messages: the queue was reordered", len(out))
			}
			continue
		}
		out = append(out, m)
	}
	return out
}

type event struct{ typ, symbol, data string }

func (e event) msg() dataMsg { return dataMsg(e.typ + "|" + e.symbol + "|" + e.data) }

// conflationFeed interleaves 20 rounds of tickers for 5 symbols with 50
// trades.
func conflationFeed() []event {
	var evs []event
	trade := 0
	for round := 0; round < 20; round++ {
		for s := 0; s < 5; s++ {
			evs = append(evs, event{"ticker", "S" + strconv.Itoa(s) + "/USDT", `{"v":` + strconv.Itoa(round) + `}`})
			if (round*5+s)%2 == 0 {
				evs = append(evs, event{"trade", "T/USDT", `{"n":` + strconv.Itoa(trade) + `}`})
				trade++
			}
		}
	}
	return evs
}

// inPlace is what a full queue keeps of evs: each ticker takes the place of
// the first queued ticker of its symbol, trades queue in order.
func inPlace(evs []event) []dataMsg {
	var out []dataMsg
	at := map[string]int{}
	for _, e := range evs {
		if e.typ == "ticker" {
			if i, ok := at[e.symbol]; ok {
				out[i] = e.msg()
				continue
			}
			at[e.symbol] = len(out)
		}
		out = append(out, e.msg())
	}
	return out
}

func trades(from, to int) []event {
	var evs []event
	for i := from; i < to; i++ {
		evs = append(evs, event{"trade", "T/USDT", `{"n":` + strconv.Itoa(i) + `}`})
	}
	return evs
}

func msgs(evs []event) []dataMsg {
	out := make([]dataMsg, len(evs))
	for i, e := range evs {
		out[i] = e.msg()
	}
	return out
}

// TestFullQueueConflatesAndDropsOldest drives a client that stops reading
// until its queue is full, publishes a feed, then lets it read: what it
// gets after the filler trades is exactly what the policy keeps, and the
// shed frames are counted per reason on the connection and the pool. A
// healthy client beside it receives every message.
func TestFullQueueConflatesAndDropsOldest(t *testing.T) {
	tests := []struct {
		name               string
		feed               []event
		want               []dataMsg
		conflated, dropped uint64 // shed by the feed, beyond the fillers
	}{
		{
			name: "latest ticker per symbol replaces in place, every trade kept",
			feed: conflationFeed(),
			want: inPlace(conflationFeed()),
			// 100 tickers for 5 symbols: 95 conflated; 5 first tickers and
			// 50 trades each pushed out a filler.
			conflated: 95, dropped: 55,
		},
		{
			name:      "trades beyond the bound drop the oldest",
			feed:      trades(0, 150),
			want:      msgs(trades(50, 150)),
			conflated: 0, dropped: 150,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The policy at the bound the expectations count with: 100 frames.
			h := start(t, func(c *config.Config) { c.WriteTimeout = time.Minute; c.Queue.MaxMessages = 100 })
			healthy := h.dial(t)
			stalled := wstest.DialRaw(t, h.url, stalledRcvBuf)
			c := h.poolConn(t, stalled.Conn.LocalAddr())
			hc := h.poolConn(t, healthy.Conn.LocalAddr())
			published := saturate(t, h, c, 0, hc)
			before := c.Stats()

			for i, e := range tc.feed {
				h.send(t, "binance", e.typ, e.symbol, e.data)
				if i%50 == 49 || i == len(tc.feed)-1 {
					// A feed has a rate: the healthy writer takes each burst
					// before the next (the stalled one never does).
					h.dispatched(t, published+uint64(i+1))
					drained(t, hc)
				}
			}

			after := c.Stats()
			if got := after.Shed["conflated"] - before.Shed["conflated"]; got != tc.conflated {
				t.Errorf("conflated %d frames, want %d", got, tc.conflated)
			}
			if got := after.Shed["queue_full"] - before.Shed["queue_full"]; got != tc.dropped {
				t.Errorf("dropped %d oldest frames, want %d", got, tc.dropped)
			}
			if after.Dropped != after.Shed["queue_full"]+after.Shed["conflated"] {
				t.Errorf("dropped %d != sum of reasons %v", after.Dropped, after.Shed)
			}
			ps := h.srv.Stats().Pool
			if ps.Shed["conflated"] != after.Shed["conflated"] || ps.Shed["queue_full"] < after.Shed["queue_full"] {
				t.Errorf("pool shed %v, connection shed %v", ps.Shed, after.Shed)
			}
			js, _ := json.Marshal(after)
			if !bytes.Contains(js, []byte(`"dropped":`+strconv.FormatUint(after.Dropped, 10))) {
				t.Errorf("connection listing %s lacks its dropped count", js)
			}

			got := readAfterFillers(t, stalled, len(tc.want))
			if strings.Join(asStrings(got), "\n") != strings.Join(asStrings(tc.want), "\n") {
				t.Fatalf("stalled client got after the fillers:\n%s\nwant:\n%s", strings.Join(asStrings(got), "\n"), strings.Join(asStrings(tc.want), "\n"))
			}

			// The healthy client got everything, in order.
			var fresh []dataMsg
			for len(fresh) < len(tc.feed) {
				m := healthy.Next(t, wait)
				if m.Type == "welcome" {
					continue
				}
				if d := decodeData(t, m.Raw); !isFiller(d) {
					fresh = append(fresh, d)
				}
			}
			if strings.Join(asStrings(fresh), "\n") != strings.Join(asStrings(msgs(tc.feed)), "\n") {
				t.Fatal("healthy client did not get the feed in order")
			}
			if d := hc.Stats().Dropped; d != 0 {
				t.Fatalf("healthy client lost %d frames", d)
			}
		})
	}
}

func asStrings(ms []dataMsg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m)
	}
	return out
}

// TestSlowConsumerClosed1008: a client whose queue stays full for longer
// than slow_consumer.max_lag is closed with 1008 "Slow consumer" and
// counted; if it never reads again its socket is closed anyway, and a
// healthy client beside it stays.
func TestSlowConsumerClosed1008(t *testing.T) {
	const maxLag = 300 * time.Millisecond
	tests := []struct {
		name  string
		reads bool
	}{
		{"client reading again receives the close frame", true},
		{"client that never reads is disconnected", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, func(c *config.Config) {
				c.SlowConsumer.MaxLag = maxLag
				c.WriteTimeout = time.Minute // only the slow-consumer policy may close it
			})
			// The healthy client reads as fast as it can (a decoding client
			// under the race detector could itself lag 300ms behind 8 KiB
			// frames) and reports pongs.
			healthy := wstest.DialRaw(t, h.url, 0)
			h.poolConn(t, healthy.Conn.LocalAddr())
			pongs := make(chan struct{}, 1)
			go func() {
				for {
					f, err := healthy.ReadFrame(time.Time{})
					if err != nil {
						return
					}
					if bytes.Contains(f.Payload[:min(len(f.Payload), 20)], []byte(`"pong"`)) {
						pongs <- struct{}{}
					}
				}
			}()
			stalled := wstest.DialRaw(t, h.url, stalledRcvBuf)
			c := h.poolConn(t, stalled.Conn.LocalAddr())

			var satSince int64
			published := uint64(0)
			deadline := time.Now().Add(30 * time.Second)
			for h.srv.Pool().SlowConsumerCloses() == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("not closed as a slow consumer: %+v", c.Stats())
				}
				if s := c.Stats().SaturatedSince; s != 0 && satSince == 0 {
					satSince = s
				}
				for i := 0; i < 20; i++ {
					h.send(t, "fill", "trade", "FILL/USDT", `{"pad":"`+fillerPad+`"}`)
				}
				published += 20
				h.dispatched(t, published)
			}
			closedAt := time.Now().UnixMilli()
			if satSince == 0 || time.Duration(closedAt-satSince)*time.Millisecond < maxLag {
				t.Fatalf("closed %dms after saturation, want at least %s", closedAt-satSince, maxLag)
			}
			if code := c.CloseCode(); code != 1008 {
				t.Fatalf("close code %d, want 1008", code)
			}

			if tc.reads {
				deadline := time.Now().Add(wait)
				for {
					f, err := stalled.ReadFrame(deadline)
					if err != nil {
						t.Fatalf("no close frame: %v", err)
					}
					if f.Op == wstest.OpClose {
						if f.CloseCode() != 1008 || f.CloseReason() != "Slow consumer" {
							t.Fatalf("close frame %d %q, want 1008 \"Slow consumer\"", f.CloseCode(), f.CloseReason())
						}
						break
					}
				}
			} else {
				// The server closes the socket CloseGrace after the decision
				// even though its writer is stuck in a write.
				wstest.Eventually(t, wait, "stalled connection removed", func() bool { return h.srv.Pool().Len() == 1 })
				deadline := time.Now().Add(wait)
				for {
					_, err := stalled.ReadFrame(deadline)
					if err == nil {
						continue
					}
					if errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatal("socket still open after the slow-consumer close")
					}
					break
				}
			}

			st := h.srv.Stats()
			if st.Pool.SlowConsumerCloses != 1 || st.Pool.Shed["slow_consumer"] == 0 {
				t.Fatalf("pool stats: %d slow-consumer closes, shed %v", st.Pool.SlowConsumerCloses, st.Pool.Shed)
			}
			if st.Pool.ErrorConnections != 0 {
				t.Fatalf("slow-consumer close counted as %d error connections", st.Pool.ErrorConnections)
			}
			if err := healthy.WriteText(`{"type":"ping"}`); err != nil {
				t.Fatal(err)
			}
			select {
			case <-pongs:
			case <-time.After(wait):
				t.Fatal("healthy client got no pong")
			}
			if n := h.srv.Pool().Len(); !tc.reads && n != 1 {
				t.Fatalf("%d connections left, want the healthy one", n)
			}
		})
	}
}

// seqReader reads the data frames of a raw client in the background and
// extracts each one's "seq".
type seqReader struct {
	seqs chan int
	errs chan error
}

func readSeqs(r *wstest.Raw) *seqReader {
	sr := &seqReader{seqs: make(chan int, 1<<16), errs: make(chan error, 1)}
	go func() {
		key := []byte(`"seq":`)
		for {
			f, err := r.ReadFrame(time.Time{})
			if err != nil {
				sr.errs <- err
				close(sr.seqs)
				return
			}
			i := bytes.Index(f.Payload, key)
			if f.Op != wstest.OpText || i < 0 {
				continue
			}
			rest := f.Payload[i+len(key):]
			j := bytes.IndexAny(rest, ",}")
			n, err := strconv.Atoi(string(rest[:j]))
			if err != nil {
				sr.errs <- err
				close(sr.seqs)
				return
			}
			sr.seqs <- n
		}
	}()
	return sr
}

// expect checks that seqs 0..n-1 arrive in order.
func (sr *seqReader) expect(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for want := 0; want < n; want++ {
		select {
		case got, ok := <-sr.seqs:
			if !ok {
				t.Fatalf("connection ended after %d of %d messages: %v", want, n, <-sr.errs)
			}
			if got != want {
				t.Fatalf("got seq %d, want %d: a message was lost or reordered", got, want)
			}
		case <-deadline:
			t.Fatalf("only %d of %d messages within %s", want, n, timeout)
		}
	}
}

// TestHealthyClientsUnaffectedByStalled: with 20% of the clients stalled,
// the dispatcher keeps going and every healthy client receives every
// message, in order, while the stalled ones conflate and drop.
func TestHealthyClientsUnaffectedByStalled(t *testing.T) {
	const healthyN, stalledN, n = 8, 2, 3000
	h := start(t, func(c *config.Config) { c.WriteTimeout = time.Minute; c.SlowConsumer.MaxLag = time.Minute })
	var healthy []*seqReader
	var healthyConns, stalledConns []*pool.Conn
	for i := 0; i < healthyN; i++ {
		r := wstest.DialRaw(t, h.url, 0)
		healthyConns = append(healthyConns, h.poolConn(t, r.Conn.LocalAddr()))
		healthy = append(healthy, readSeqs(r))
	}
	for i := 0; i < stalledN; i++ {
		r := wstest.DialRaw(t, h.url, stalledRcvBuf)
		stalledConns = append(stalledConns, h.poolConn(t, r.Conn.LocalAddr()))
	}
	pad := strings.Repeat("p", 4<<10)
	types := []string{"trade", "ticker", "depth", "trade", "kline_1m"}
	for i := 0; i < n; i++ {
		h.send(t, "binance", types[i%len(types)], "S"+strconv.Itoa(i%3)+"/USDT", `{"seq":`+strconv.Itoa(i)+`,"pad":"`+pad+`"}`)
		if i%50 == 49 {
			// A feed has a rate: let the healthy writers take each burst
			// before the next (the stalled ones never do).
			h.dispatched(t, uint64(i+1))
			drained(t, healthyConns...)
		}
	}
	for _, sr := range healthy {
		sr.expect(t, n, 30*time.Second)
	}
	for i, c := range healthyConns {
		if d := c.Stats().Dropped; d != 0 {
			t.Errorf("healthy client %d lost %d frames", i, d)
		}
	}
	for i, c := range stalledConns {
		st := c.Stats()
		if st.Shed["conflated"] == 0 || st.Shed["queue_full"] == 0 {
			t.Errorf("stalled client %d was not shed (%v): the test did not stall it", i, st.Shed)
		}
	}
	if d := h.srv.Dispatcher().Stats().Dropped; d != 0 {
		t.Errorf("dispatcher dropped %d messages", d)
	}
}
