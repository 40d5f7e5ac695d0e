package wstest

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"
)

// Raw is a WebSocket client driven by hand over a plain TCP connection. It
// completes the opening handshake and then reads only when told to, so a
// test can play a client that has stopped reading (a stalled browser tab)
// and later inspect exactly what the server had sent it.
//
// Concurrency: one goroutine may read and one may write at a time.
type Raw struct {
	Conn net.Conn
	br   *bufio.Reader
}

// Frame is one server frame as read by Raw.
type Frame struct {
	Op      byte
	Payload []byte
	// RSV1 marks a compressed message (permessage-deflate, internal/wsdeflate).
	RSV1 bool
}

// Opcodes of the frames Raw reads and writes.
const (
	OpText  = 0x1
	OpClose = 0x8
	OpPing  = 0x9
	OpPong  = 0xA
)

// CloseCode returns the status code of a close frame, or 0.
func (f Frame) CloseCode() int {
	if f.Op != OpClose || len(f.Payload) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(f.Payload))
}

// CloseReason returns the reason of a close frame.
func (f Frame) CloseReason() string {
	if f.Op != OpClose || len(f.Payload) < 2 {
		return ""
	}
	return string(f.Payload[2:])
}

// DialRaw connects to rawURL (ws://host/path) and completes the handshake.
// rcvBuf > 0 sets the socket's receive buffer before connecting, so that
// the advertised window stays small and the server's writes back up soon;
// 0 keeps the system default. The connection is closed at cleanup.
func DialRaw(t testing.TB, rawURL string, rcvBuf int) *Raw {
	t.Helper()
	r, err := TryDialRaw(rawURL, rcvBuf)
	if err != nil {
		t.Fatalf("raw dial %s: %v", rawURL, err)
	}
	t.Cleanup(func() { _ = r.Conn.Close() })
	return r
}

// TryDialRaw is DialRaw without a test: it returns the error.
func TryDialRaw(rawURL string, rcvBuf int) (*Raw, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	nc, err := dialTCP(u.Host, rcvBuf)
	if err != nil {
		return nil, err
	}
	r := &Raw{Conn: nc, br: bufio.NewReaderSize(nc, 4096)}
	if err := r.handshake(u); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return r, nil
}

// dialTCP connects to host; rcvBuf > 0 sets the socket's receive buffer
// before connecting (0: the system default).
func dialTCP(host string, rcvBuf int) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return d.Dial("tcp", host)
}

func (r *Raw) handshake(u *url.URL) error { return r.handshakeWith(u, "", nil) }

// handshakeWith sends extra header lines (each ending in CRLF) and stores
// the response's headers in *resp when resp is not nil.
func (r *Raw) handshakeWith(u *url.URL, extra string, respHdr *http.Header) error {
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	_ = r.Conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer func() { _ = r.Conn.SetDeadline(time.Time{}) }()
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	if _, err := io.WriteString(r.Conn, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		return fmt.Errorf("handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake: status %s", resp.Status)
	}
	if respHdr != nil {
		*respHdr = resp.Header
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(h[:]); got != want {
		return fmt.Errorf("handshake: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	return nil
}

// ErrMasked is returned when the server sends a masked frame.
var ErrMasked = errors.New("wstest: server frame is masked")

// ReadFrame reads the next frame, waiting at most until deadline (zero: no
// deadline).
func (r *Raw) ReadFrame(deadline time.Time) (Frame, error) {
	_ = r.Conn.SetReadDeadline(deadline)
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return Frame{}, err
	}
	if h[1]&0x80 != 0 {
		return Frame{}, ErrMasked
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return Frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return Frame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 64<<20 {
		return Frame{}, fmt.Errorf("wstest: frame of %d bytes", n)
	}
	f := Frame{Op: h[0] & 0x0F, Payload: make([]byte, n), RSV1: h[0]&0x40 != 0}
	if _, err := io.ReadFull(r.br, f.Payload); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// WriteText sends a masked text frame holding s.
func (r *Raw) WriteText(s string) error { return r.write(OpText, []byte(s)) }

// WriteClose sends a masked close frame with code.
func (r *Raw) WriteClose(code int) error {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], uint16(code))
	return r.write(OpClose, b[:])
}

func (r *Raw) write(op byte, p []byte) error {
	b := []byte{0x80 | op}
	switch {
	case len(p) <= 125:
		b = append(b, 0x80|byte(len(p)))
	case len(p) <= 0xFFFF:
		b = append(b, 0x80|126, byte(len(p)>>8), byte(len(p)))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, c := range p {
		b = append(b, c^mask[i%4])
	}
	_ = r.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.Conn.Write(b)
	return err
}
