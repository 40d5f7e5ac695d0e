package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h): bind the
// source address without reserving a port, so that the kernel picks the port
// at connect time per destination and one source address serves far more
// than 28k connections.
const ipBindAddressNoPort = 24

// DefaultSourceIPs are the loopback source addresses connections are spread
// over: 127.0.0.2 to 127.0.0.20.
func DefaultSourceIPs() []string {
	ips := make([]string, 0, 19)
	for i := 2; i <= 20; i++ {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", i))
	}
	return ips
}

var errHandshake = errors.New("loadtest: handshake refused")

// wsConn is one lean client connection: a raw socket, a buffered reader and
// a reused payload buffer.
type wsConn struct {
	nc       net.Conn
	br       *bufio.Reader
	payload  []byte
	group    int
	received atomic.Uint64
	closed   atomic.Bool
	sock     *sockCounter
	sockMark uint64    // socket bytes consumed up to markReady
	z        *inflater // permessage-deflate agreed (deflate.go)
	// countOnly: the connection does not inflate compressed frames nor
	// record latency; it counts data frames from their headers (countLoop).
	countOnly bool
}

// sockCounter counts the bytes read from a socket.
type sockCounter struct {
	net.Conn
	n atomic.Uint64
}

func (s *sockCounter) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	s.n.Add(uint64(n))
	return n, err
}

// markReady notes how many socket bytes the handshake and the replies read
// so far consumed; wireBytes counts from there.
func (c *wsConn) markReady() { c.sockMark = c.sock.n.Load() - uint64(c.br.Buffered()) }

// wireBytes is what was read from the socket since markReady.
func (c *wsConn) wireBytes() uint64 { return c.sock.n.Load() - c.sockMark }

func dialWS(ctx context.Context, rawURL, localIP string, timeout time.Duration, compress bool) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	path := u.RequestURI()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if compress {
		req += "Sec-WebSocket-Extensions: " + deflateOffer + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	sock := &sockCounter{Conn: nc}
	br := bufio.NewReaderSize(sock, 4096)
	status, err := br.ReadString('\n')
	if err != nil {
		nc.Close()
		return nil, err
	}
	if !strings.Contains(status, " 101 ") {
		nc.Close()
		return nil, fmt.Errorf("%w: %s", errHandshake, strings.TrimSpace(status))
	}
	var z *inflater
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			nc.Close()
			return nil, err
		}
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Extensions") {
			z = newInflater(v)
		}
	}
	return &wsConn{nc: nc, br: br, sock: sock, payload: make([]byte, 0, 512), z: z}, nil
}

// readHeader reads the next frame's header: the opcode, whether RSV1 marks
// it compressed, and the payload length. Server frames are unmasked and, from
// both servers measured, unfragmented.
func (c *wsConn) readHeader() (op byte, compressed bool, n uint64, err error) {
	var h [2]byte
	if _, err = io.ReadFull(c.br, h[:]); err != nil {
		return 0, false, 0, err
	}
	op, compressed = h[0]&0x0f, h[0]&0x40 != 0
	n = uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err = io.ReadFull(c.br, e[:]); err != nil {
			return 0, false, 0, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err = io.ReadFull(c.br, e[:]); err != nil {
			return 0, false, 0, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 16<<20 {
		return 0, false, 0, fmt.Errorf("loadtest: frame of %d bytes", n)
	}
	return op, compressed, n, nil
}

// readPayload reads n payload bytes into the reused buffer.
func (c *wsConn) readPayload(n uint64) ([]byte, error) {
	if uint64(cap(c.payload)) < n {
		c.payload = make([]byte, n)
	}
	c.payload = c.payload[:n]
	_, err := io.ReadFull(c.br, c.payload)
	return c.payload, err
}

// readFrame returns the next frame, inflated; the payload is valid until the
// next call.
func (c *wsConn) readFrame() (op byte, payload []byte, err error) {
	op, compressed, n, err := c.readHeader()
	if err != nil {
		return 0, nil, err
	}
	if _, err = c.readPayload(n); err != nil {
		return 0, nil, err
	}
	if compressed {
		if c.z == nil {
			return 0, nil, errors.New("loadtest: compressed frame without permessage-deflate")
		}
		p, err := c.z.inflate(c.payload)
		return op, p, err
	}
	return op, c.payload, nil
}

// writeFrame sends a masked client frame (zero masking key: the payload goes
// as is, which is valid framing).
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	b := make([]byte, 0, 14+len(payload))
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	b = append(b, payload...)
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

// waitText reads frames until a text frame containing marker arrives.
func (c *wsConn) waitText(marker []byte) error {
	for {
		op, p, err := c.readFrame()
		if err != nil {
			return err
		}
		switch op {
		case 0x1:
			if bytes.Contains(p, marker) {
				return nil
			}
		case 0x8:
			return fmt.Errorf("loadtest: closed by server: %q", p)
		case 0x9:
			if err := c.writeFrame(0xA, p); err != nil {
				return err
			}
		}
	}
}

var sentAtKey = []byte(`"sentAt":`)

// sentAt extracts the publisher's timestamp (unix ns) from a data frame.
func sentAt(p []byte) (int64, bool) {
	i := bytes.Index(p, sentAtKey)
	if i < 0 {
		return 0, false
	}
	var v int64
	seen := false
	for _, ch := range p[i+len(sentAtKey):] {
		if ch < '0' || ch > '9' {
			break
		}
		v = v*10 + int64(ch-'0')
		seen = true
	}
	return v, seen
}
