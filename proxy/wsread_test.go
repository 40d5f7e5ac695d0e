package proxy_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"wsproxy/internal/wstest"
)

// rawClient speaks WebSocket frame by frame, to send what a library client
// would not: fragments, unmasked frames, reserved bits.
type rawClient struct {
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, rawURL string) *rawClient {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", u.Host, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(wait))
	_, err = io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: "+u.Host+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	c := &rawClient{nc: nc, br: bufio.NewReader(nc)}
	status, err := c.br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		t.Fatalf("handshake: %q %v", status, err)
	}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	if op, p := c.read(t); op != 1 || !strings.Contains(string(p), `"welcome"`) {
		t.Fatalf("first frame op %d %q, want welcome", op, p)
	}
	return c
}

// frame sends one frame; masked unless told otherwise.
func (c *rawClient) frame(t testing.TB, b0 byte, payload string, masked bool) {
	t.Helper()
	b := []byte{b0}
	n := len(payload)
	mbit := byte(0)
	if masked {
		mbit = 0x80
	}
	switch {
	case n <= 125:
		b = append(b, mbit|byte(n))
	case n <= 0xffff:
		b = append(b, mbit|126, byte(n>>8), byte(n))
	default:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := []byte(payload)
	if masked {
		key := [4]byte{0x11, 0x22, 0x33, 0x44}
		b = append(b, key[:]...)
		for i := range p {
			p[i] ^= key[i&3]
		}
	}
	if _, err := c.nc.Write(append(b, p...)); err != nil {
		t.Fatal(err)
	}
}

func (c *rawClient) read(t testing.TB) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		t.Fatal(err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		_, _ = io.ReadFull(c.br, e[:])
		n = int(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		_, _ = io.ReadFull(c.br, e[:])
		n = int(binary.BigEndian.Uint64(e[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0f, p
}

// readUntil returns the first frame with opcode op, skipping others.
func (c *rawClient) readUntil(t testing.TB, op byte) []byte {
	t.Helper()
	for {
		got, p := c.read(t)
		if got == op {
			return p
		}
	}
}

func TestRawFramesFragmentedMessageAndControlFrames(t *testing.T) {
	h := start(t, nil)
	c := dialRaw(t, h.url)
	// A ping message in three fragments with a WebSocket ping in between.
	c.frame(t, 0x01, `{"type":`, true)
	c.frame(t, 0x89, "hb", true)
	c.frame(t, 0x00, `"pi`, true)
	c.frame(t, 0x80, `ng"}`, true)
	if p := c.readUntil(t, 0xA); string(p) != "hb" {
		t.Fatalf("pong payload %q, want hb", p)
	}
	if p := c.readUntil(t, 0x1); !strings.Contains(string(p), `"type":"pong"`) {
		t.Fatalf("reply %q, want the pong of the reassembled ping message", p)
	}
	// A close with a code is echoed with that code.
	c.frame(t, 0x88, "\x03\xe8bye", true)
	if p := c.readUntil(t, 0x8); len(p) < 2 || binary.BigEndian.Uint16(p) != 1000 {
		t.Fatalf("close echo %q, want 1000", p)
	}
}

func TestRawFramesProtocolErrorsClose1002(t *testing.T) {
	tests := []struct {
		name    string
		b0      byte
		payload string
		masked  bool
	}{
		{name: "unmasked", b0: 0x81, payload: `{"type":"ping"}`, masked: false},
		{name: "reserved bits", b0: 0xC1, payload: `{"type":"ping"}`, masked: true},
		{name: "unknown opcode", b0: 0x83, payload: "x", masked: true},
		{name: "continuation first", b0: 0x80, payload: "x", masked: true},
		{name: "fragmented ping", b0: 0x09, payload: "x", masked: true},
		{name: "long ping", b0: 0x89, payload: strings.Repeat("x", 126), masked: true},
	}
	h := start(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, h.url)
			c.frame(t, tc.b0, tc.payload, tc.masked)
			p := c.readUntil(t, 0x8)
			if len(p) < 2 || binary.BigEndian.Uint16(p) != 1002 {
				t.Fatalf("close %q, want 1002", p)
			}
		})
	}
	wstest.Eventually(t, wait, "connections released", func() bool { return h.srv.Pool().Len() == 0 })
}

// TestRawFramesEarlyBytesAreKept: a client that sends its first frame in the
// same packet as the handshake (not allowed, but harmless) is still served.
func TestRawFramesEarlyBytesAreKept(t *testing.T) {
	h := start(t, nil)
	u, _ := url.Parse(h.url)
	nc, err := net.DialTimeout("tcp", u.Host, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	ping := []byte{0x81, 0x80 | 15, 0, 0, 0, 0}
	ping = append(ping, `{"type":"ping"}`...)
	req := "GET /ws HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), ping...)); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{nc: nc, br: bufio.NewReader(nc)}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	for {
		_, p := c.read(t)
		if strings.Contains(string(p), `"type":"pong"`) {
			return
		}
	}
}

// TestRawFramesNegativeLengthControlFrameClose1002: a control frame whose
// 64-bit length has its most significant bit set (RFC 6455 5.2 forbids it)
// is a protocol error, not a crash of the server.
func TestRawFramesNegativeLengthControlFrameClose1002(t *testing.T) {
	h := start(t, nil)
	c := dialRaw(t, h.url)
	if _, err := c.nc.Write([]byte{0x89, 0x80 | 127, 0xff, 0, 0, 0, 0, 0, 0, 1, 0x11, 0x22, 0x33, 0x44}); err != nil {
		t.Fatal(err)
	}
	p := c.readUntil(t, 0x8)
	if len(p) < 2 || binary.BigEndian.Uint16(p) != 1002 {
		t.Fatalf("close %q, want 1002", p)
	}
	wstest.Eventually(t, wait, "connection released", func() bool { return h.srv.Pool().Len() == 0 })
}
