package wsframe_test

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/fasthttp/websocket"

	"wsproxy/internal/wsframe"
)

// maskedFrame encodes payload as one masked client frame with b0 (FIN,
// RSV and opcode) as its first byte.
func maskedFrame(b0 byte, payload []byte, key [4]byte) []byte {
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, key[:]...)
	for i, b := range payload {
		f = append(f, b^key[i&3])
	}
	return f
}

// readAll reads messages from a Reader fed data until it fails, and
// returns the messages and the error that ended it.
func readAll(t *testing.T, data []byte, limit int64) ([][]byte, error) {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		_, _ = client.Write(data)
		_ = client.Close()
	}()
	defer server.Close()
	r := &wsframe.Reader{Conn: server, Limit: limit, Control: controls{}}
	var msgs [][]byte
	for {
		_, p, err := r.ReadMessage()
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, append([]byte(nil), p...))
		r.Release()
	}
}

// FuzzReadMessage: a message split into masked fragments, with a ping
// between them, comes back whole; arbitrary bytes never yield a message
// above the limit, and end in a protocol error, a close or the end of the
// stream.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("hello"), []byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}, uint8(2))
	f.Add([]byte(`{"type":"subscribe"}`), []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}, uint8(1))
	f.Add([]byte{}, []byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, uint8(0))
	f.Add([]byte("x"), []byte{0xc1, 0x80, 0, 0, 0, 0}, uint8(3))
	f.Fuzz(func(t *testing.T, payload, data []byte, split uint8) {
		const limit = 1 << 16
		if len(payload) > limit {
			payload = payload[:limit]
		}
		key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
		cut := 0
		if len(payload) > 0 {
			cut = int(split) % (len(payload) + 1)
		}
		var stream []byte
		if cut == 0 || cut == len(payload) {
			stream = maskedFrame(0x82, payload, key)
		} else {
			stream = maskedFrame(0x02, payload[:cut], key)
			stream = append(stream, maskedFrame(0x89, []byte("ping"), key)...)
			stream = append(stream, maskedFrame(0x80, payload[cut:], key)...)
		}
		msgs, err := readAll(t, stream, limit)
		if len(msgs) != 1 || string(msgs[0]) != string(payload) {
			t.Fatalf("read %d messages (%v) for a %d-byte message split at %d", len(msgs), err, len(payload), cut)
		}

		msgs, err = readAll(t, data, 64)
		for _, m := range msgs {
			if len(m) > 64 {
				t.Fatalf("message of %d bytes above the limit", len(m))
			}
		}
		var pe *wsframe.ProtocolError
		var ce *websocket.CloseError
		if pe, ok := wsframe.AsProtocolError(err); ok && pe.Code == 0 {
			t.Fatalf("protocol error without a close code: %v", pe)
		}
		if !errors.As(err, &pe) && !errors.As(err, &ce) && !isEndOfStream(err) {
			t.Fatalf("unexpected error %T %v", err, err)
		}
	})
}

func isEndOfStream(err error) bool {
	return err != nil && (err.Error() == "EOF" || err.Error() == "unexpected EOF" || errors.Is(err, net.ErrClosed))
}
