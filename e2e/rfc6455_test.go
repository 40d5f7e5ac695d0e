package e2e

import (
	"bytes"
	be "encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"wsproxy/internal/wstest"
)

// TestRFC6455Conformance drives raw frames at the real binary and checks
// the server's answer to each protocol violation (RFC 6455 sections 5 and 7):
// the right close code reaches the client, no frame follows it, and the
// server ends the TCP connection after the close handshake. Market data
// flows meanwhile (demo feed at a high rate), so that queued frames are
// in flight when the violation arrives.
func TestRFC6455Conformance(t *testing.T) { conformance(t, "") }

// The same suite with permessage-deflate negotiated, in both modes: server
// frames (compressed market data among them) are inflated as a browser
// does, and compressed client messages are checked as RFC 7692 asks.
func TestRFC6455ConformanceCompressed(t *testing.T) {
	for _, mode := range []string{"per_message", "shared_stream"} {
		t.Run(mode, func(t *testing.T) { conformance(t, mode) })
	}
}

func conformance(t *testing.T, zmode string) {
	env := []string{
		"WSPROXY_MAX_PAYLOAD=1024",
		"WSPROXY_SOURCES_DEMO_INTERVAL=2ms",
	}
	var hdr http.Header
	if zmode != "" {
		env = append(env, "WSPROXY_COMPRESSION_ENABLED=true", "WSPROXY_COMPRESSION_MODE="+zmode, "WSPROXY_COMPRESSION_MIN_SIZE=1")
		hdr = http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"}}
	}
	p := startProc(t, env)
	const max = 1024
	bad := []byte{'{', '"', 't', 0xff, 0xfe, '"', '}'}
	closeBody := func(code int, reason string) []byte {
		return append(be.BigEndian.AppendUint16(nil, uint16(code)), reason...)
	}
	ping := []byte(`{"type":"ping"}`)

	tests := []struct {
		name   string
		frames []frame
		code   int // expected close code; 0: expectations in check
		check  func(t *testing.T, rc *rawConn)
	}{
		{name: "invalid UTF-8 text", frames: []frame{{Fin: true, Op: opText, Payload: bad}}, code: 1007},
		{name: "invalid UTF-8 across continuation frames", frames: []frame{
			{Op: opText, Payload: []byte(`{"type":"ping","x":"`)},
			{Op: opCont, Payload: []byte{0xe2, 0x82}},
			{Fin: true, Op: opCont, Payload: []byte{0x28, '"', '}'}}, // 0xE2 0x82 0x28: broken sequence
		}, code: 1007},
		{name: "valid UTF-8 split across continuation frames", frames: []frame{
			{Op: opText, Payload: []byte(`{"type":"ping","x":"` + "\xe2\x82")},
			{Fin: true, Op: opCont, Payload: []byte("\xac" + `"}`)}, // U+20AC split in two
		}, check: expectPong},
		{name: "RSV2 set on a compressed message", frames: []frame{{Fin: true, RSV: 0x60, Op: opText, Payload: wstest.Deflate(ping)}}, code: 1002},
		{name: "RSV2 set", frames: []frame{{Fin: true, RSV: 0x20, Op: opText, Payload: ping}}, code: 1002},
		{name: "RSV3 set on ping", frames: []frame{{Fin: true, RSV: 0x10, Op: opPing}}, code: 1002},
		{name: "reserved data opcode 3", frames: []frame{{Fin: true, Op: 0x3, Payload: ping}}, code: 1002},
		{name: "reserved control opcode 0xB", frames: []frame{{Fin: true, Op: 0xB}}, code: 1002},
		{name: "fragmented ping", frames: []frame{{Op: opPing, Payload: []byte("a")}, {Fin: true, Op: opCont, Payload: []byte("b")}}, code: 1002},
		{name: "fragmented close", frames: []frame{{Op: opClose, Payload: closeBody(1000, "")}}, code: 1002},
		{name: "ping over 125 bytes", frames: []frame{{Fin: true, Op: opPing, Payload: bytes.Repeat([]byte("p"), 126)}}, code: 1002},
		{name: "unmasked text", frames: []frame{{Fin: true, Op: opText, Payload: ping, Unmasked: true}}, code: 1002},
		{name: "unmasked ping", frames: []frame{{Fin: true, Op: opPing, Unmasked: true}}, code: 1002},
		{name: "continuation without start", frames: []frame{{Fin: true, Op: opCont, Payload: ping}}, code: 1002},
		{name: "data frame interleaved in a fragmented message", frames: []frame{
			{Op: opText, Payload: []byte(`{"type":`)},
			{Fin: true, Op: opText, Payload: ping},
		}, code: 1002},
		{name: "control frame inside a fragmented message is allowed", frames: []frame{
			{Op: opText, Payload: []byte(`{"type":`)},
			{Fin: true, Op: opPing, Payload: []byte("mid")},
			{Fin: true, Op: opCont, Payload: []byte(`"ping"}`)},
		}, check: func(t *testing.T, rc *rawConn) {
			if f := rc.next(t, 5*time.Second); f.Op != opPong || string(f.Payload) != "mid" {
				t.Fatalf("got op %#x %q, want pong \"mid\"", f.Op, f.Payload)
			}
			expectPong(t, rc)
		}},
		{name: "frame over max_payload", frames: []frame{{Fin: true, Op: opText, Payload: bytes.Repeat([]byte("x"), 64<<10)}}, code: 1009},
		{name: "header announcing a huge frame", frames: []frame{{Fin: true, Op: opBin, Len: 1 << 40, Payload: []byte("x")}}, code: 1009},
		{name: "fragments summing over max_payload", frames: []frame{
			{Op: opText, Payload: bytes.Repeat([]byte("x"), max/2+1)},
			{Fin: true, Op: opCont, Payload: bytes.Repeat([]byte("x"), max/2+1)},
		}, code: 1009},
		{name: "close 1000 is echoed", frames: []frame{{Fin: true, Op: opClose, Payload: closeBody(1000, "bye")}}, code: 1000},
		{name: "close 4000 (application) is echoed", frames: []frame{{Fin: true, Op: opClose, Payload: closeBody(4000, "")}}, code: 4000},
		{name: "close 1001 is echoed", frames: []frame{{Fin: true, Op: opClose, Payload: closeBody(1001, "")}}, code: 1001},
		{name: "empty close is answered with empty close", frames: []frame{{Fin: true, Op: opClose}}, code: 1005},
		{name: "close code 1005 on the wire", frames: []frame{{Fin: true, Op: opClose, Payload: closeBody(1005, "")}}, code: 1002},
		{name: "close code 1006 on the wire", frames: []frame{{Fin: true, Op: opClose, Payload: closeBody(1006, "")}}, code: 1002},
		{name: "close code 999", frames: []frame{{Fin: true, Op: opClose, Payload: closeBody(999, "")}}, code: 1002},
		{name: "close code 1004", frames: []frame{{Fin: true, Op: opClose, Payload: closeBody(1004, "")}}, code: 1002},
		{name: "close code 5000", frames: []frame{{Fin: true, Op: opClose, Payload: closeBody(5000, "")}}, code: 1002},
		{name: "close reason not UTF-8", frames: []frame{{Fin: true, Op: opClose, Payload: closeBody(1000, "\xff")}}, code: 1002},
		{name: "ping payload comes back in the pong", frames: []frame{{Fin: true, Op: opPing, Payload: []byte("hello \x00\xff")}},
			check: func(t *testing.T, rc *rawConn) {
				if f := rc.next(t, 5*time.Second); f.Op != opPong || string(f.Payload) != "hello \x00\xff" {
					t.Fatalf("got op %#x %q, want pong with the ping's payload", f.Op, f.Payload)
				}
			}},
		{name: "ping with 125 bytes", frames: []frame{{Fin: true, Op: opPing, Payload: bytes.Repeat([]byte{7}, 125)}},
			check: func(t *testing.T, rc *rawConn) {
				if f := rc.next(t, 5*time.Second); f.Op != opPong || !bytes.Equal(f.Payload, bytes.Repeat([]byte{7}, 125)) {
					t.Fatalf("got op %#x len %d, want 125-byte pong", f.Op, len(f.Payload))
				}
			}},
		{name: "unsolicited pong is ignored", frames: []frame{{Fin: true, Op: opPong, Payload: []byte("x")}, {Fin: true, Op: opText, Payload: ping}},
			check: expectPong},
	}
	if zmode == "" {
		tests = append(tests, struct {
			name   string
			frames []frame
			code   int
			check  func(t *testing.T, rc *rawConn)
		}{name: "RSV1 set", frames: []frame{{Fin: true, RSV: 0x40, Op: opText, Payload: ping}}, code: 1002})
	} else {
		z := wstest.Deflate(ping)
		tests = append(tests, []struct {
			name   string
			frames []frame
			code   int
			check  func(t *testing.T, rc *rawConn)
		}{
			{name: "compressed ping", frames: []frame{{Fin: true, RSV: 0x40, Op: opText, Payload: z}}, check: expectPong},
			{name: "compressed ping in two fragments", frames: []frame{
				{RSV: 0x40, Op: opText, Payload: z[:2]},
				{Fin: true, Op: opCont, Payload: z[2:]},
			}, check: expectPong},
			{name: "RSV1 on a continuation frame", frames: []frame{
				{Op: opText, Payload: []byte(`{"type":`)},
				{Fin: true, RSV: 0x40, Op: opCont, Payload: []byte(`"ping"}`)},
			}, code: 1002},
			{name: "RSV1 on a ping", frames: []frame{{Fin: true, RSV: 0x40, Op: opPing}}, code: 1002},
			{name: "invalid deflate data", frames: []frame{{Fin: true, RSV: 0x40, Op: opText, Payload: []byte{0xff, 0xff, 0xff, 0x00}}}, code: 1007},
			{name: "truncated deflate data", frames: []frame{{Fin: true, RSV: 0x40, Op: opText, Payload: z[:len(z)/2]}}, code: 1007},
			{name: "inflates beyond max_payload", frames: []frame{{Fin: true, RSV: 0x40, Op: opText,
				Payload: wstest.Deflate(bytes.Repeat([]byte("x"), 64<<10))}}, code: 1009},
			{name: "compressed invalid UTF-8", frames: []frame{{Fin: true, RSV: 0x40, Op: opText, Payload: wstest.Deflate(bad)}}, code: 1007},
		}...)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := rawDial(t, p.addr, "/ws", hdr)
			if zmode != "" {
				rc.z = &wstest.Inflater{Context: zmode == "shared_stream"}
			}
			if f := rc.next(t, 5*time.Second); f.Op != opText || !strings.Contains(string(f.Payload), `"welcome"`) {
				t.Fatalf("first frame %#x %q", f.Op, f.Payload)
			}
			rc.write(t, tc.frames...)
			if tc.check != nil {
				tc.check(t, rc)
				return
			}
			rc.expectClose(t, tc.code, tc.frames[len(tc.frames)-1].Op == opClose && tc.code != 1002)
		})
	}
}

// expectPong waits for the application pong that answers {"type":"ping"}.
func expectPong(t *testing.T, rc *rawConn) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f := rc.next(t, time.Until(deadline))
		if f.Op == opClose {
			t.Fatalf("closed with %d %q, want a pong", f.closeCode(), f.Payload)
		}
		if f.Op == opText && strings.Contains(string(f.Payload), `"type":"pong"`) {
			return
		}
	}
}
