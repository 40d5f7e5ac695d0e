package proxy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"wsproxy/config"
	"wsproxy/internal/wstest"
	"wsproxy/pool"
)

func compression(mode string, mut func(*pool.DeflateConfig)) func(*config.Config) {
	return func(c *config.Config) {
		c.Compression.Enabled = true
		c.Compression.Mode = pool.DeflateMode(mode)
		if mut != nil {
			mut(&c.Compression)
		}
	}
}

// readData reads frames until n data messages (type other than the
// protocol replies) were decoded, failing on any frame the inflater
// rejects. It returns the decoded data messages and every decoded message.
func readMessages(t *testing.T, r *wstest.Raw, in *wstest.Inflater, n int) (data []map[string]any, all []string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for len(data) < n {
		f, err := r.ReadFrame(deadline)
		if err != nil {
			t.Fatalf("after %d data messages: %v", len(data), err)
		}
		if f.Op != wstest.OpText {
			if f.RSV1 {
				t.Fatalf("control frame %d with RSV1", f.Op)
			}
			continue
		}
		b, err := in.Message(f)
		if err != nil {
			t.Fatalf("message %d: %v", len(all), err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("message %d does not decode to JSON (%v): %q", len(all), err, b)
		}
		all = append(all, string(b))
		switch m["type"] {
		case "welcome", "pong", "subscribed", "unsubscribed", "error":
			continue
		}
		data = append(data, m)
	}
	return data, all
}

func TestDeflateNegotiation(t *testing.T) {
	perMsg := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	cases := []struct {
		mode, offer, want string
	}{
		{"per_message", "", ""},
		{"per_message", "permessage-deflate", perMsg},
		{"per_message", "permessage-deflate; client_max_window_bits", perMsg},
		{"per_message", "permessage-deflate; client_max_window_bits=10", perMsg + "; client_max_window_bits=10"},
		{"per_message", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", perMsg},
		{"per_message", "permessage-deflate; server_max_window_bits=15", perMsg + "; server_max_window_bits=15"},
		// A smaller server window cannot be honoured; the next offer can.
		{"per_message", "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits", perMsg},
		{"per_message", "permessage-deflate; server_max_window_bits=10", ""},
		{"per_message", "permessage-deflate; client_max_window_bits=7", ""},
		{"per_message", "permessage-deflate; bogus_param", ""},
		{"per_message", "permessage-deflate; client_no_context_takeover; client_no_context_takeover", ""},
		{"per_message", "x-webkit-deflate-frame", ""},
		{"shared_stream", "permessage-deflate; client_max_window_bits", "permessage-deflate; client_no_context_takeover"},
		{"shared_stream", "permessage-deflate; server_no_context_takeover", perMsg},
	}
	servers := map[string]*harness{}
	for _, tc := range cases {
		h := servers[tc.mode]
		if h == nil {
			h = start(t, compression(tc.mode, nil))
			servers[tc.mode] = h
		}
		r, got := wstest.DialDeflate(t, h.url, tc.offer)
		if got != tc.want {
			t.Errorf("%s: offer %q answered %q, want %q", tc.mode, tc.offer, got, tc.want)
		}
		f, err := r.ReadFrame(time.Now().Add(wait))
		if err != nil || f.RSV1 || !bytes.Contains(f.Payload, []byte(`"welcome"`)) {
			t.Errorf("%s %q: welcome frame %+v, %v: want it uncompressed", tc.mode, tc.offer, f, err)
		}
	}
	// Off (the default): offers are ignored.
	h := start(t, nil)
	if _, got := wstest.DialDeflate(t, h.url, "permessage-deflate"); got != "" {
		t.Fatalf("compression off answered %q", got)
	}
}

// Clients that do not offer compression get exactly the bytes of a server
// without it.
func TestDeflateNotOfferedSameBytes(t *testing.T) {
	on := start(t, compression("shared_stream", func(c *pool.DeflateConfig) { c.MinSize = 1 }))
	off := start(t, nil)
	var got [2][]string
	for i, h := range []*harness{on, off} {
		r, resp := wstest.DialDeflate(t, h.url, "")
		if resp != "" {
			t.Fatalf("answered %q to no offer", resp)
		}
		if f, err := r.ReadFrame(time.Now().Add(wait)); err != nil || f.RSV1 {
			t.Fatalf("welcome: %+v %v", f, err)
		}
		if err := r.WriteText(`{"type":"subscribe","payload":{"channel":"marketData"}}`); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadFrame(time.Now().Add(wait)); err != nil {
			t.Fatal(err)
		}
		h.publishAll(t, feed)
		for range feed {
			f, err := r.ReadFrame(time.Now().Add(wait))
			if err != nil || f.RSV1 {
				t.Fatalf("frame %+v %v", f, err)
			}
			var m map[string]any
			if err := json.Unmarshal(f.Payload, &m); err != nil {
				t.Fatal(err)
			}
			delete(m, "timestamp")
			b, _ := json.Marshal(m)
			got[i] = append(got[i], string(b))
		}
	}
	if strings.Join(got[0], "\n") != strings.Join(got[1], "\n") {
		t.Fatalf("compressing node sent\n%s\nplain node sent\n%s", got[0], got[1])
	}
	if z := on.srv.Stats().Pool.Compression; z == nil || z.Connections != 0 || z.BytesIn != 0 {
		t.Fatalf("compression stats %+v, want no compressing connection", z)
	}
	if off.srv.Stats().Pool.Compression != nil {
		t.Fatal("compression stats present while compression is off")
	}
}

func TestDeflateClientMessages(t *testing.T) {
	h := start(t, func(c *config.Config) {
		compression("per_message", nil)(c)
		c.MaxPayload = 4096
	})
	dial := func() *wstest.Raw {
		r, resp := wstest.DialDeflate(t, h.url, "permessage-deflate; client_max_window_bits")
		if resp == "" {
			t.Fatal("not negotiated")
		}
		if _, err := r.ReadFrame(time.Now().Add(wait)); err != nil {
			t.Fatal(err)
		}
		return r
	}
	expectClose := func(r *wstest.Raw, code int) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			f, err := r.ReadFrame(deadline)
			if err != nil {
				t.Fatalf("waiting for close %d: %v", code, err)
			}
			if f.Op == wstest.OpClose {
				if f.CloseCode() != code {
					t.Fatalf("close %d %q, want %d", f.CloseCode(), f.CloseReason(), code)
				}
				return
			}
		}
	}
	// A compressed ping is answered, and so is a plain one.
	r := dial()
	in := wstest.NewInflater("server_no_context_takeover")
	for _, compressed := range []bool{true, false, true} {
		msg := []byte(`{"type":"ping"}`)
		first := byte(0x81)
		if compressed {
			msg, first = wstest.Deflate(msg), 0xC1
		}
		if err := r.WriteFrame(first, msg); err != nil {
			t.Fatal(err)
		}
		f, err := r.ReadFrame(time.Now().Add(wait))
		if err != nil {
			t.Fatal(err)
		}
		if b, err := in.Message(f); err != nil || !bytes.Contains(b, []byte(`"pong"`)) {
			t.Fatalf("reply to a ping: %q %v", b, err)
		}
	}
	// A compressed message fragmented over two frames (RSV1 on the first).
	z := wstest.Deflate([]byte(`{"type":"ping"}`))
	if err := r.WriteFrame(0x41, z[:3]); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFrame(0x80, z[3:]); err != nil {
		t.Fatal(err)
	}
	if f, err := r.ReadFrame(time.Now().Add(wait)); err != nil || !bytes.Contains(f.Payload, []byte(`"pong"`)) {
		t.Fatalf("reply to a fragmented compressed ping: %+v %v", f, err)
	}

	// max_payload bounds the inflated size: a small bomb closes with 1009.
	r = dial()
	bomb := wstest.Deflate(bytes.Repeat([]byte(" "), 1<<20))
	if len(bomb) > 4096 {
		t.Fatalf("bomb of %d compressed bytes", len(bomb))
	}
	if err := r.WriteFrame(0xC1, bomb); err != nil {
		t.Fatal(err)
	}
	expectClose(r, 1009)

	// Data that does not inflate: 1007.
	r = dial()
	if err := r.WriteFrame(0xC1, []byte{0xff, 0xff, 0xff, 0x00, 0x12}); err != nil {
		t.Fatal(err)
	}
	expectClose(r, 1007)

	// RSV1 on a continuation frame or a control frame: 1002.
	r = dial()
	if err := r.WriteFrame(0x01, []byte(`{"type":`)); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFrame(0xC0, []byte(`"ping"}`)); err != nil {
		t.Fatal(err)
	}
	expectClose(r, 1002)
	r = dial()
	if err := r.WriteFrame(0xC9, nil); err != nil {
		t.Fatal(err)
	}
	expectClose(r, 1002)

	// Without negotiation RSV1 stays a protocol error.
	plain, _ := wstest.DialDeflate(t, h.url, "")
	if _, err := plain.ReadFrame(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	if err := plain.WriteFrame(0xC1, wstest.Deflate([]byte(`{"type":"ping"}`))); err != nil {
		t.Fatal(err)
	}
	expectClose(plain, 1002)
}

var _ = fmt.Sprint
