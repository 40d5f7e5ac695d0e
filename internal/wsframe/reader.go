package wsframe

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
)

// Package wsframe reads a WebSocket client's frames (RFC 6455, with
// permessage-deflate from RFC 7692) straight from the raw socket, not
// through websocket.Conn: once the handshake is done, the upgrade's request
// context, fasthttp's 4 KiB connection reader, the library's own read and
// write buffers and the hijack wrapper are all released, and an idle
// connection costs its read goroutine's (small) stack and a few hundred bytes
// of state. The reader only reads: replies and close frames go through
// whatever writes to the socket, so there is one writer per socket.

// ProtocolError is a client frame the protocol forbids; the connection is
// closed with code.
type ProtocolError struct {
	Code   int    // the close code to answer with
	Reason string // the close reason
}

func (e *ProtocolError) Error() string { return "wsframe: " + e.Reason }

var (
	errTooBig       = &ProtocolError{websocket.CloseMessageTooBig, "Message too big"}
	errUnmasked     = &ProtocolError{websocket.CloseProtocolError, "Client frames must be masked"}
	errReserved     = &ProtocolError{websocket.CloseProtocolError, "Reserved bits set"}
	errBadOpcode    = &ProtocolError{websocket.CloseProtocolError, "Unknown opcode"}
	errBadControl   = &ProtocolError{websocket.CloseProtocolError, "Invalid control frame"}
	errContinuation = &ProtocolError{websocket.CloseProtocolError, "Unexpected continuation frame"}
	errFragmented   = &ProtocolError{websocket.CloseProtocolError, "Expected continuation frame"}
	errBadCloseCode = &ProtocolError{websocket.CloseProtocolError, "Invalid close code"}
	errBadCloseText = &ProtocolError{websocket.CloseProtocolError, "Invalid UTF-8 in close reason"}
	errBadDeflate   = &ProtocolError{websocket.CloseInvalidFramePayloadData, "Invalid compressed data"}
)

// Control receives the control frames a Reader reads. An interface rather
// than three callbacks, so that a caller's own type serves as one and a
// Reader built for a wake-up (or taken from a pool) allocates nothing for it.
type Control interface {
	OnPing(data string) // a ping arrived
	OnPong()            // a pong arrived
	OnClose(code int)   // a valid close frame arrived
}

// Reader reads a client's frames. It is used only by the connection's
// read loop.
type Reader struct {
	Conn  net.Conn
	Pre   []byte // bytes read ahead during the handshake, consumed first
	Limit int64  // largest message; larger ones fail with errTooBig
	msg   []byte // reassembly buffer, dropped when it grew large
	// ahead takes small reads: a typical client frame (header and a short
	// JSON request) arrives in one read instead of three.
	ahead [128]byte
	// Inflate: permessage-deflate was agreed; RSV1 on a message's first
	// frame marks it compressed (internal/wsdeflate).
	Inflate bool
	out     []byte // inflated message, dropped when it grew large

	// Control receives the control frames read (required).
	Control Control
	// ControlReturns makes ReadMessage return (0, nil, nil) after a ping or
	// pong that arrived between messages, instead of reading on: a caller
	// that parks idle sockets (internal/netpoll) must get control back
	// whenever a read could block, and a heartbeat's pong is often the
	// last thing a client sends for a long time.
	ControlReturns bool
	// Run runs f, the inflation of a compressed message, and returns when
	// it did; the caller may run it off the read goroutine's stack. Nil
	// runs f directly.
	Run func(f func())
}

// Detach returns the raw socket under ws together with any bytes already
// buffered above it (none for a conforming client, which waits for the 101
// before sending). ws and its buffers are not used again.
func Detach(ws *websocket.Conn) (net.Conn, []byte) {
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

func (r *Reader) readFull(b []byte) error {
	if len(r.Pre) > 0 {
		n := copy(b, r.Pre)
		r.Pre = r.Pre[n:]
		b = b[n:]
		if len(b) == 0 {
			return nil
		}
	}
	if len(b) >= len(r.ahead)/2 {
		_, err := io.ReadFull(r.Conn, b)
		return err
	}
	// io.ReadAtLeast, inline: one stack frame less under the read that
	// an idle connection is parked in (the caller keeps it small).
	n := 0
	for n < len(b) {
		m, err := r.Conn.Read(r.ahead[n:])
		n += m
		if err != nil && n < len(b) {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	copy(b, r.ahead[:n])
	r.Pre = r.ahead[len(b):n]
	return nil
}

// Release drops the message buffers once the message was handled, so that
// an idle connection holds none.
func (r *Reader) Release() { r.msg, r.out = nil, nil }

// ReadMessage returns the next text or binary message, handling control
// frames through the callbacks (see ControlReturns). A close frame ends it with a
// *websocket.CloseError; a forbidden frame with a *ProtocolError.
func (r *Reader) ReadMessage() (messageType int, p []byte, err error) {
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
			if !r.Inflate || rsv != 0x40 || (op != 1 && op != 2) {
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
		case control && (!fin || n < 0 || n > 125): // n < 0: the 64-bit length's top bit set
			return 0, nil, errBadControl
		case op != 0 && op != 1 && op != 2 && op != 8 && op != 9 && op != 10:
			return 0, nil, errBadOpcode
		case op == 0 && messageType == 0:
			return 0, nil, errContinuation
		case (op == 1 || op == 2) && messageType != 0:
			return 0, nil, errFragmented
		case !control && (n < 0 || int64(len(r.msg))+n > r.Limit):
			return 0, nil, errTooBig
		}
		var payload []byte
		if control {
			// On the heap, not in this frame: the read goroutine's stack
			// stays at its smallest size (the caller keeps it small); pings are rare.
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
		case websocket.PingMessage, websocket.PongMessage:
			if op == websocket.PingMessage {
				r.Control.OnPing(string(payload))
			} else {
				r.Control.OnPong()
			}
			if r.ControlReturns && messageType == 0 {
				return 0, nil, nil
			}
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
			r.Control.OnClose(code)
			return 0, nil, &websocket.CloseError{Code: code, Text: text}
		case 1, 2:
			messageType = op
		}
		if fin {
			if compressed {
				inflate := func() { r.out, err = wsdeflate.Inflate(r.out[:0], r.msg, r.Limit) }
				if r.Run != nil {
					r.Run(inflate)
				} else {
					inflate()
				}
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

// AsProtocolError reports whether err is a forbidden client frame.
func AsProtocolError(err error) (*ProtocolError, bool) {
	var pe *ProtocolError
	ok := errors.As(err, &pe)
	return pe, ok
}

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
