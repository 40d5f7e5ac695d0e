package pool

import "encoding/binary"

// Op is a WebSocket opcode.
type Op byte

// Opcodes of the frames the server sends.
const (
	OpText  Op = 0x1
	OpClose Op = 0x8
	OpPing  Op = 0x9
	OpPong  Op = 0xA
)

// Frame is one server-to-client WebSocket message. A data frame is encoded
// once by the dispatcher and shared, read-only, by every recipient's queue.
type Frame struct {
	Op   Op
	Data []byte
	// IngestAt is the time (unix nanoseconds) the message entered the proxy;
	// non-zero marks a data frame, which may be shed under pressure. Zero
	// marks a reply or control frame, which is never shed.
	IngestAt int64
	// Key identifies (exchange, type, symbol) for conflation; LatestWins marks
	// data types whose newer frame supersedes an older one of the same Key.
	Key        uint64
	LatestWins bool

	z  *deflated    // shared per_message compression (deflate.go); nil: none
	zs *streamBytes // set on a shared stream's frame (deflate.go)
}

// IsData reports whether f carries market data (and so may be shed).
func (f *Frame) IsData() bool { return f.IngestAt != 0 }

// NewControl returns a text reply frame (welcome, pong, subscribed, error...).
func NewControl(data []byte) *Frame { return &Frame{Op: OpText, Data: data} }

// pingFrame is shared by every heartbeat.
var pingFrame = &Frame{Op: OpPing}

// CloseFrame returns a close frame with code and reason; the reason is
// truncated to the 123 bytes a control frame allows.
// Code 0 gives a close frame with no body (the echo of a close that had no
// status code).
func CloseFrame(code int, reason string) *Frame {
	if code == 0 {
		return &Frame{Op: OpClose}
	}
	if len(reason) > 123 {
		reason = reason[:123]
	}
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	return &Frame{Op: OpClose, Data: append(b, reason...)}
}

// appendHeader appends an unmasked, final frame header for a payload of n
// bytes.
func appendHeader(b []byte, op Op, n int) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n <= 125:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(uint64(n)>>56), byte(uint64(n)>>48), byte(uint64(n)>>40), byte(uint64(n)>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}
