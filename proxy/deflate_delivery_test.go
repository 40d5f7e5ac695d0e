package proxy_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
)

const offerCtx = "permessage-deflate; client_max_window_bits"

// zclient is a raw client decoding the server's frames as a browser does.
type zclient struct {
	name string
	r    *wstest.Raw
	in   *wstest.Inflater
}

func dialZ(t *testing.T, h *harness, name, offer string, rcvBuf int) *zclient {
	t.Helper()
	r, resp := wstest.DialDeflateBuf(t, h.url, offer, rcvBuf)
	if offer != "" && resp == "" {
		t.Fatalf("%s: compression not negotiated", name)
	}
	z := &zclient{name: name, r: r, in: wstest.NewInflater(resp)}
	if m := z.next(t); m.typ != "welcome" {
		t.Fatalf("%s: first message %s", name, m.raw)
	}
	return z
}

type zmsg struct {
	typ string
	i   int // data messages: payload.data.i
	raw string
}

// next decodes the next text message; any frame the client cannot decode
// fails the test.
func (z *zclient) next(t *testing.T) zmsg {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		f, err := z.r.ReadFrame(deadline)
		if err != nil {
			t.Fatalf("%s: %v", z.name, err)
		}
		if f.Op != wstest.OpText {
			if f.RSV1 {
				t.Fatalf("%s: control frame with RSV1", z.name)
			}
			continue
		}
		b, err := z.in.Message(f)
		if err != nil {
			t.Fatalf("%s: message %d: %v", z.name, z.in.Compressed+z.in.Plain, err)
		}
		var m struct {
			Type    string `json:"type"`
			Payload struct {
				Data struct {
					I *int `json:"i"`
				} `json:"data"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: not JSON (%v): %q", z.name, err, b)
		}
		out := zmsg{typ: m.Type, i: -1, raw: string(b)}
		if m.Payload.Data.I != nil {
			out.i = *m.Payload.Data.I
		}
		return out
	}
}

// data reads n data messages (skipping protocol replies).
func (z *zclient) data(t *testing.T, n int) []zmsg {
	t.Helper()
	var out []zmsg
	for len(out) < n {
		if m := z.next(t); m.i >= 0 {
			out = append(out, m)
		}
	}
	return out
}

// until reads until a reply of type typ, returning the data before it.
func (z *zclient) until(t *testing.T, typ string) []zmsg {
	t.Helper()
	var out []zmsg
	for {
		m := z.next(t)
		if m.typ == typ {
			return out
		}
		if m.i >= 0 {
			out = append(out, m)
		}
	}
}

func (z *zclient) send(t *testing.T, s string) {
	t.Helper()
	if err := z.r.WriteText(s); err != nil {
		t.Fatal(err)
	}
}

// marketMsg is message i of a market-data-like feed; every fifth is small
// (below min_size), the others repeat most of their bytes, as tickers do.
func marketMsg(i int) (typ, symbol, data string) {
	if i%5 == 4 {
		return "trade", "ETH/USDT", fmt.Sprintf(`{"i":%d}`, i)
	}
	typ, symbol = "trade", "BTC/USDT"
	if i%3 == 0 {
		typ = "ticker"
	}
	return typ, symbol, fmt.Sprintf(`{"i":%d,"price":"%d.%02d","qty":"0.%04d","side":"buy","bid":"64000.10","ask":"64000.20","vol24h":"18234.5521","note":"the quick brown fox jumps over the lazy dog"}`,
		i, 64000+i%7, i%100, i*37%10000)
}

func publishMarket(t *testing.T, h *harness, from, to int) {
	t.Helper()
	before := h.srv.Dispatcher().Stats().Forwarded
	for i := from; i < to; i++ {
		typ, sym, data := marketMsg(i)
		h.send(t, "binance", typ, sym, data)
	}
	h.dispatched(t, before+uint64(to-from))
}

// sameAs checks that got are the messages ref got for the same i, byte for
// byte.
func sameAs(t *testing.T, who string, got []zmsg, ref map[int]string) {
	t.Helper()
	for _, m := range got {
		if want, ok := ref[m.i]; ok && m.raw != want {
			t.Fatalf("%s: message %d decoded to\n%s\nwant\n%s", who, m.i, m.raw, want)
		}
	}
}

func seqOf(ms []zmsg) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = m.i
	}
	return out
}

func wantSeq(t *testing.T, who string, got []zmsg, from, to int) {
	t.Helper()
	s := seqOf(got)
	if len(s) != to-from {
		t.Fatalf("%s got %v, want %d..%d", who, s, from, to-1)
	}
	for k, i := range s {
		if i != from+k {
			t.Fatalf("%s got %v, want %d..%d", who, s, from, to-1)
		}
	}
}

// Every client, compressing or not, decodes every message to the same
// bytes in both modes: clients joining mid-stream, a reset, snapshots,
// subscription changes and more streams than max_streams.
func TestDeflateDelivery(t *testing.T) {
	for _, mode := range []string{"per_message", "shared_stream"} {
		t.Run(mode, func(t *testing.T) {
			h := start(t, compression(mode, func(c *pool.DeflateConfig) {
				c.MinSize = 250
				c.ResetEvery = 10
				c.ResetInterval = time.Hour
				c.MaxStreams = 2
			}))
			shared := mode == "shared_stream"
			p := dialZ(t, h, "plain", "", 0)
			a := dialZ(t, h, "a", offerCtx, 0)
			b := dialZ(t, h, "b", "permessage-deflate", 0)
			ref := map[int]string{}
			record := func(ms []zmsg) {
				for _, m := range ms {
					ref[m.i] = m.raw
				}
			}

			// 23: the stream is mid-generation when c joins below.
			publishMarket(t, h, 0, 23)
			got := p.data(t, 23)
			wantSeq(t, "plain", got, 0, 23)
			record(got)
			if p.in.Compressed != 0 {
				t.Fatal("plain client got compressed frames")
			}
			for _, z := range []*zclient{a, b} {
				got := z.data(t, 23)
				wantSeq(t, z.name, got, 0, 23)
				sameAs(t, z.name, got, ref)
				if z.in.Compressed < 15 {
					t.Fatalf("%s: %d compressed, %d plain", z.name, z.in.Compressed, z.in.Plain)
				}
			}

			// A client joining mid-stream; the stream resets every 10.
			c := dialZ(t, h, "c", offerCtx, 0)
			publishMarket(t, h, 23, 50)
			record(p.data(t, 27))
			for _, z := range []*zclient{a, b, c} {
				got := z.data(t, 27)
				wantSeq(t, z.name, got, 23, 50)
				sameAs(t, z.name, got, ref)
			}
			if c.in.Compressed == 0 {
				t.Fatal("joining client never got a compressed frame")
			}
			zs := h.srv.Stats().Pool.Compression
			if zs.Uncompressed["below_min_size"] == 0 || zs.FramesCompressed == 0 || zs.BytesOut >= zs.BytesIn || zs.Connections != 3 {
				t.Fatalf("stats %+v", zs)
			}
			if shared {
				if c.in.Plain <= 5 || zs.Uncompressed["joining"] == 0 || zs.StreamResets < 4 || zs.StreamsActive != 1 {
					t.Fatalf("join: client c %d plain / %d compressed, stats %+v", c.in.Plain, c.in.Compressed, zs)
				}
			}

			// A filtered client: a snapshot of the tickers, then a change of
			// subscription, while a third subscription finds max_streams
			// reached and falls back to per_message.
			f := dialZ(t, h, "f", offerCtx, 0)
			f.send(t, `{"type":"subscribe","payload":{"exchange":["binance"],"dataTypes":["ticker"],"symbols":["BTC/USDT"]}}`)
			f.until(t, "subscribed")
			snap := f.data(t, 1)
			sameAs(t, "f snapshot", snap, ref)
			g := dialZ(t, h, "g", offerCtx, 0)
			g.send(t, `{"type":"subscribe","payload":{"exchange":["binance"],"dataTypes":["trade"],"symbols":["ETH/USDT"]}}`)
			g.until(t, "subscribed")
			if shared && h.srv.Stats().Pool.Compression.StreamsActive != 2 {
				t.Fatalf("streams %+v", h.srv.Stats().Pool.Compression)
			}
			publishMarket(t, h, 50, 80)
			record(p.data(t, 30))
			for _, z := range []*zclient{a, b, c} {
				sameAs(t, z.name, z.data(t, 30), ref)
			}
			got = f.data(t, 8) // BTC tickers: i%3 == 0, i%5 != 4
			sameAs(t, "f", got, ref)
			for _, m := range got {
				if m.i%3 != 0 || m.i%5 == 4 {
					t.Fatalf("f got %d outside its filter", m.i)
				}
			}
			got = g.data(t, 6) // small ETH trades
			sameAs(t, "g", got, ref)

			f.send(t, `{"type":"unsubscribe"}`)
			f.until(t, "unsubscribed")
			f.send(t, `{"type":"subscribe","payload":{"exchange":["binance"],"dataTypes":["trade"],"symbols":["BTC/USDT"]}}`)
			sameAs(t, "f", f.until(t, "subscribed"), ref)
			publishMarket(t, h, 80, 120)
			record(p.data(t, 40))
			for _, z := range []*zclient{a, b, c} {
				got := z.data(t, 40)
				wantSeq(t, z.name, got, 80, 120)
				sameAs(t, z.name, got, ref)
			}
			got = f.data(t, 22) // BTC trades: i%3 != 0, i%5 != 4
			sameAs(t, "f", got, ref)
			sameAs(t, "g", g.data(t, 8), ref)
			if f.in.Compressed == 0 {
				t.Fatal("filtered client never got a compressed frame")
			}
		})
	}
}

// A client that stops reading is shed to; every frame it then reads still
// decodes (in shared_stream, frames after the gap come uncompressed until
// the next reset), and the counters say why.
func TestDeflateStalledReader(t *testing.T) {
	for _, mode := range []string{"per_message", "shared_stream"} {
		t.Run(mode, func(t *testing.T) {
			h := start(t, func(c *config.Config) {
				compression(mode, func(c *pool.DeflateConfig) {
					c.ResetEvery = 1 << 30
					c.ResetInterval = time.Hour
				})(c)
				c.WriteTimeout = time.Minute
				c.Queue.MaxMessages = 20
			})
			s := dialZ(t, h, "stalled", offerCtx, stalledRcvBuf)
			sc := h.poolConn(t, s.r.Conn.LocalAddr())
			// Incompressible fillers fill the socket buffers quickly.
			pad := make([]byte, 6<<10)
			i := 0
			deadline := time.Now().Add(30 * time.Second)
			for sc.Stats().Shed["queue_full"] < 50 {
				if time.Now().After(deadline) {
					t.Fatalf("not saturated: %+v", sc.Stats())
				}
				_, _ = rand.Read(pad)
				h.send(t, "binance", "trade", "FILL/USDT", fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, base64.StdEncoding.EncodeToString(pad)))
				i++
				h.dispatched(t, uint64(i))
			}
			// Read everything that is left: each frame decodes, in order.
			last, n := -1, 0
			for {
				m := s.next(t)
				if m.i < 0 {
					continue
				}
				if m.i <= last {
					t.Fatalf("message %d after %d", m.i, last)
				}
				last = m.i
				n++
				if last == i-1 {
					break
				}
			}
			zs := h.srv.Stats().Pool.Compression
			if n >= i || s.in.Compressed == 0 {
				t.Fatalf("read %d of %d (%d compressed)", n, i, s.in.Compressed)
			}
			if mode == "shared_stream" && (zs.Uncompressed["diverged"] == 0 || s.in.Plain == 0) {
				t.Fatalf("shed in a stream: %d plain frames, stats %+v", s.in.Plain, zs)
			}
		})
	}
}
