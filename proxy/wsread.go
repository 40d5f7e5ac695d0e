package proxy

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"time"
	"unicode/utf8"

	"wsproxy/internal/wsdeflate"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
)

// Client frames are read by frameReader straight from the raw socket, not
// through websocket.Conn: once the handshake is done, the upgrade's request
// context, fasthttp's 4 KiB connection reader, the library's own read and
// write buffers and the hijack wrapper are all released, and an idle
// connection costs its read goroutine's (small) stack and a few hundred bytes
// of state. Replies and close frames still go through the connection's pool
// writer, so there is one writer per socket.

// protocolError is a client frame the protocol forbids; the connection is
// closed with code.
type protocolError struct {
	code   int
	reason string
}

func (e *protocolError) Error() string { return "proxy: " + e.reason }

var (
	errTooBig       = &protocolError{websocket.CloseMessageTooBig, "Message too big"}
	errUnmasked     = &protocolError{websocket.CloseProtocolError, "Client frames must be masked"}
	errReserved     = &protocolError{websocket.CloseProtocolError, "Reserved bits set"}
	errBadOpcode    = &protocolError{websocket.CloseProtocolError, "Unknown opcode"}
	errBadControl   = &protocolError{websocket.CloseProtocolError, "Invalid control frame"}
	errContinuation = &protocolError{websocket.CloseProtocolError, "Unexpected continuation frame"}
	errFragmented   = &protocolError{websocket.CloseProtocolError, "Expected continuation frame"}
	errBadCloseCode = &protocolError{websocket.CloseProtocolError, "Invalid close code"}
	errBadCloseText = &protocolError{websocket.CloseProtocolError, "Invalid UTF-8 in close reason"}
	errBadDeflate   = &protocolError{websocket.CloseInvalidFramePayloadData, "Invalid compressed data"}
)

// frameReader reads a client's frames. It is used only by the connection's
// read loop.
type frameReader struct {
	nc    net.Conn
	pre   []byte // bytes read ahead during the handshake, consumed first
	limit int64  // largest message; larger ones fail with errTooBig
	msg   []byte // reassembly buffer, dropped when it grew large
	// ahead takes small reads: a typical client frame (header and a short
	// JSON request) arrives in one read instead of three.
	ahead [128]byte
	// inflate: permessage-deflate was agreed; RSV1 on a message's first
	// frame marks it compressed (internal/wsdeflate).
	inflate bool
	out     []byte // inflated message, dropped when it grew large

	onPing  func(data string)
	onPong  func()
	onClose func(code int)
}

// detach returns the raw socket under ws together with any bytes already
// buffered above it (none for a conforming client, which waits for the 101
// before sending). ws and its buffers are not used again.
func detach(ws *websocket.Conn) (net.Conn, []byte) {
	hj := ws.NetConn()
	raw := hj
	if u, ok := hj.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	if raw == hj {
		return raw, nil
	}
	// Drain what the handshake reader holds without blocking: a deadline
	// in the past makes the socket read fail at once when nothing is
	// buffered.
	var pre []byte
	_ = raw.SetReadDeadline(time.Unix(1, 0))
	buf := make([]byte, 512)
	for {
		n, err := hj.Read(buf)
		pre = append(pre, buf[:n]...)
		if err != nil || n == 0 {
			break
		}
	}
	_ = raw.SetReadDeadline(time.Time{})
	return raw, pre
}

func (r *frameReader) readFull(b []byte) error {
	if len(r.pre) > 0 {
		n := copy(b, r.pre)
		r.pre = r.pre[n:]
		b = b[n:]
		if len(b) == 0 {
			return nil
		}
	}
	if len(b) >= len(r.ahead)/2 {
		_, err := io.ReadFull(r.nc, b)
		return err
	}
	// io.ReadAtLeast, inline: one stack frame less under the read that
	// an idle connection is parked in (shallow.go).
	n := 0
	for n < len(b) {
		m, err := r.nc.Read(r.ahead[n:])
		n += m
		if err != nil && n < len(b) {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	copy(b, r.ahead[:n])
	r.pre = r.ahead[len(b):n]
	return nil
}

// release drops the message buffers once the message was handled, so that
// an idle connection holds none.
func (r *frameReader) release() { r.msg, r.out = nil, nil }

// ReadMessage returns the next text or binary message, handling control
// frames through the callbacks. A close frame ends it with a
// *websocket.CloseError; a forbidden frame with a *protocolError.
func (r *frameReader) ReadMessage() (messageType int, p []byte, err error) {
	if cap(r.msg) > 4096 {
		r.msg = nil
	}
	r.msg = r.msg[:0]
	if cap(r.out) > 4096 {
		r.out = nil
	}
	messageType = 0
	compressed := false
	for {
		var h [14]byte
		if err := r.readFull(h[:2]); err != nil {
			return 0, nil, err
		}
		fin, op := h[0]&0x80 != 0, int(h[0]&0x0f)
		if rsv := h[0] & 0x70; rsv != 0 {
			// RSV1 is permessage-deflate's, on the first frame of a
			// data message only (RFC 7692 6).
			if !r.inflate || rsv != 0x40 || (op != 1 && op != 2) {
				return 0, nil, errReserved
			}
			compressed = true
		}
		if h[1]&0x80 == 0 {
			return 0, nil, errUnmasked
		}
		n := int64(h[1] & 0x7f)
		ext := 0
		switch n {
		case 126:
			ext = 2
		case 127:
			ext = 8
		}
		if err := r.readFull(h[2 : 2+ext+4]); err != nil {
			return 0, nil, err
		}
		switch ext {
		case 2:
			n = int64(binary.BigEndian.Uint16(h[2:4]))
		case 8:
			n = int64(binary.BigEndian.Uint64(h[2:10]))
		}
		mask := h[2+ext : 2+ext+4]
		control := op >= 8
		switch {
		case control && (!fin || n > 125):
			return 0, nil, errBadControl
		case op != 0 && op != 1 && op != 2 && op != 8 && op != 9 && op != 10:
			return 0, nil, errBadOpcode
		case op == 0 && messageType == 0:
			return 0, nil, errContinuation
		case (op == 1 || op == 2) && messageType != 0:
			return 0, nil, errFragmented
		case !control && (n < 0 || int64(len(r.msg))+n > r.limit):
			return 0, nil, errTooBig
		}
		var payload []byte
		if control {
			// On the heap, not in this frame: the read goroutine's stack
			// stays at its smallest size (shallow.go); pings are rare.
			payload = make([]byte, n)
		} else {
			start := len(r.msg)
			r.msg = slices.Grow(r.msg, int(n))[:start+int(n)]
			payload = r.msg[start:]
		}
		if err := r.readFull(payload); err != nil {
			return 0, nil, err
		}
		for i := range payload {
			payload[i] ^= mask[i&3]
		}
		switch op {
		case websocket.PingMessage:
			r.onPing(string(payload))
			continue
		case websocket.PongMessage:
			r.onPong()
			continue
		case websocket.CloseMessage:
			code := websocket.CloseNoStatusReceived
			text := ""
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
				text = string(payload[2:])
				if !validCloseCode(code) {
					return 0, nil, errBadCloseCode
				}
			} else if len(payload) == 1 {
				return 0, nil, errBadControl
			}
			if !utf8.ValidString(text) {
				return 0, nil, errBadCloseText
			}
			r.onClose(code)
			return 0, nil, &websocket.CloseError{Code: code, Text: text}
		case 1, 2:
			messageType = op
		}
		if fin {
			if compressed {
				// Off the read goroutine's stack (shallow.go).
				shallow(func() { r.out, err = wsdeflate.Inflate(r.out[:0], r.msg, r.limit) })
				switch {
				case errors.Is(err, wsdeflate.ErrTooBig):
					return 0, nil, errTooBig
				case err != nil:
					return 0, nil, errBadDeflate
				}
				return messageType, r.out, nil
			}
			return messageType, r.msg, nil
		}
	}
}

// asProtocolError reports whether err is a forbidden client frame.
func asProtocolError(err error) (*protocolError, bool) {
	var pe *protocolError
	ok := errors.As(err, &pe)
	return pe, ok
}

// connLog is a connection's logger: the server's, with conn_id added to each
// event. Unlike a zerolog child logger it holds no buffer of its own (a child
// logger costs 512 bytes per idle connection), and a disabled level costs
// nothing.
type connLog struct {
	l  *zerolog.Logger
	id string
}

func (c connLog) Debug() *zerolog.Event { return c.l.Debug().Str("conn_id", c.id) }
func (c connLog) Info() *zerolog.Event  { return c.l.Info().Str("conn_id", c.id) }
func (c connLog) Warn() *zerolog.Event  { return c.l.Warn().Str("conn_id", c.id) }
func (c connLog) Error() *zerolog.Event { return c.l.Error().Str("conn_id", c.id) }

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4): 1000–1003, 1007–1014 and the registered and
// private ranges 3000–4999. 1004–1006 and 1015 are reserved for local use.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
