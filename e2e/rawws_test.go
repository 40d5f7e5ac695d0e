package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	be "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"wsproxy/internal/wstest"
)

// rawConn is a hand-written WebSocket client over raw TCP, so that tests
// can send what a well-behaved library never would: bad opcodes, reserved
// bits, unmasked frames, broken UTF-8.
type rawConn struct {
	nc net.Conn
	br *bufio.Reader
	// z inflates compressed server frames when the test negotiated
	// permessage-deflate; nil: a compressed frame is an error.
	z *wstest.Inflater
}

// frame is one frame as sent on the wire. Mask defaults to on (clients must
// mask); Unmasked turns it off.
type frame struct {
	Fin      bool
	RSV      byte // bits 4..6 of the first byte: 0x40 RSV1, 0x20 RSV2, 0x10 RSV3
	Op       byte
	Payload  []byte
	Unmasked bool
	// Len overrides the length in the header (to announce more than is sent).
	Len int
}

const (
	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// rawDial opens a TCP connection and performs the upgrade by hand. hdr adds
// request headers.
func rawDial(t testing.TB, addr, path string, hdr http.Header) *rawConn {
	t.Helper()
	rc, status, err := tryRawDial(addr, path, hdr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade status %d", status)
	}
	t.Cleanup(func() { _ = rc.nc.Close() })
	return rc
}

// tryRawDial returns the response status; rc is nil unless it is 101.
func tryRawDial(addr, path string, hdr http.Header, tlsConf *tls.Config) (*rawConn, int, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, 0, err
	}
	if tlsConf != nil {
		nc = tls.Client(nc, tlsConf)
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, addr)
	fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", base64.StdEncoding.EncodeToString(key))
	for k, vs := range hdr {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, b.String()); err != nil {
		nc.Close()
		return nil, 0, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, 0, fmt.Errorf("upgrade response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, resp.StatusCode, nil
	}
	_ = nc.SetDeadline(time.Time{})
	return &rawConn{nc: nc, br: br}, resp.StatusCode, nil
}

func encodeFrame(f frame) []byte {
	b0 := f.RSV | f.Op
	if f.Fin {
		b0 |= 0x80
	}
	n := len(f.Payload)
	if f.Len > 0 {
		n = f.Len
	}
	var mask byte = 0x80
	if f.Unmasked {
		mask = 0
	}
	out := []byte{b0}
	switch {
	case n <= 125:
		out = append(out, mask|byte(n))
	case n <= 0xFFFF:
		out = append(out, mask|126, byte(n>>8), byte(n))
	default:
		out = append(out, mask|127)
		out = be.BigEndian.AppendUint64(out, uint64(n))
	}
	p := append([]byte(nil), f.Payload...)
	if !f.Unmasked {
		key := make([]byte, 4)
		_, _ = rand.Read(key)
		out = append(out, key...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return append(out, p...)
}

func (rc *rawConn) write(t testing.TB, fs ...frame) {
	t.Helper()
	var b []byte
	for _, f := range fs {
		b = append(b, encodeFrame(f)...)
	}
	_ = rc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.nc.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// sframe is a frame received from the server.
type sframe struct {
	Op      byte
	Fin     bool
	Payload []byte
}

func (f sframe) closeCode() int {
	if len(f.Payload) < 2 {
		return 1005
	}
	return int(be.BigEndian.Uint16(f.Payload))
}

// read returns the next frame; the server never masks.
func (rc *rawConn) read(timeout time.Duration) (sframe, error) {
	_ = rc.nc.SetReadDeadline(time.Now().Add(timeout))
	var h [2]byte
	if _, err := io.ReadFull(rc.br, h[:]); err != nil {
		return sframe{}, err
	}
	if h[1]&0x80 != 0 {
		return sframe{}, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(rc.br, l[:]); err != nil {
			return sframe{}, err
		}
		n = uint64(be.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(rc.br, l[:]); err != nil {
			return sframe{}, err
		}
		n = be.BigEndian.Uint64(l[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(rc.br, p); err != nil {
		return sframe{}, err
	}
	if h[0]&0x40 != 0 {
		if rc.z == nil {
			return sframe{}, errors.New("compressed server frame without permessage-deflate")
		}
		var err error
		if p, err = rc.z.Message(wstest.Frame{Op: h[0] & 0x0f, Payload: p, RSV1: true}); err != nil {
			return sframe{}, err
		}
	}
	return sframe{Op: h[0] & 0x0f, Fin: h[0]&0x80 != 0, Payload: p}, nil
}

// next returns the next frame that is not a data or heartbeat frame the test
// did not ask about: text frames carrying market data are skipped.
func (rc *rawConn) next(t testing.TB, timeout time.Duration) sframe {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f, err := rc.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if f.Op == opText && strings.Contains(string(f.Payload), `"payload":{"type":`) {
			continue // market data
		}
		return f
	}
}

// expectClose reads until the server's close frame and checks its code and
// that nothing follows it. When the server started the close, the client
// replies as it should. Either way the server must then end the TCP stream
// cleanly (FIN, read as EOF): a reset would mean it closed with unread input
// and could have destroyed its close frame before the client read it.
func (rc *rawConn) expectClose(t testing.TB, code int, clientStarted bool) sframe {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var cl sframe
	for {
		f, err := rc.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("no close frame (want %d): %v", code, err)
		}
		if f.Op == opClose {
			cl = f
			break
		}
	}
	if got := cl.closeCode(); got != code {
		t.Fatalf("close code %d (%q), want %d", got, cl.Payload, code)
	}
	if !clientStarted {
		_ = rc.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = rc.nc.Write(encodeFrame(frame{Fin: true, Op: opClose, Payload: cl.Payload[:min(2, len(cl.Payload))]}))
	}
	f, err := rc.read(5 * time.Second)
	switch {
	case err == nil:
		t.Fatalf("frame after the close frame: op %#x %q", f.Op, f.Payload)
	case errors.Is(err, io.EOF):
	default:
		t.Fatalf("after the close frame: %v, want the server to end the stream (EOF)", err)
	}
	return cl
}
