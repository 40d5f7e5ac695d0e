package wstest

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// DialDeflate is DialRaw offering permessage-deflate with the given
// Sec-WebSocket-Extensions value ("" offers nothing). It returns the
// server's answer ("" when it accepted no extension).
func DialDeflate(t testing.TB, rawURL, offer string) (*Raw, string) {
	t.Helper()
	return DialDeflateBuf(t, rawURL, offer, 0)
}

// DialDeflateBuf is DialDeflate with a receive buffer of rcvBuf bytes (0:
// the system default), as DialRaw.
func DialDeflateBuf(t testing.TB, rawURL, offer string, rcvBuf int) (*Raw, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := dialTCP(u.Host, rcvBuf)
	if err != nil {
		t.Fatal(err)
	}
	r := &Raw{Conn: nc, br: bufio.NewReaderSize(nc, 4096)}
	extra := ""
	if offer != "" {
		extra = "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	var h http.Header
	if err := r.handshakeWith(u, extra, &h); err != nil {
		_ = nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return r, h.Get("Sec-WebSocket-Extensions")
}

// WriteFrame sends one masked frame with the given first byte (FIN, RSV
// bits, opcode) and payload.
func (r *Raw) WriteFrame(first byte, p []byte) error {
	b := []byte{first}
	switch {
	case len(p) <= 125:
		b = append(b, 0x80|byte(len(p)))
	case len(p) <= 0xFFFF:
		b = append(b, 0x80|126, byte(len(p)>>8), byte(len(p)))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p)))
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

// Deflate compresses p as one permessage-deflate message (no context
// takeover), for a client to send.
func Deflate(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// Inflater decodes a server's messages as a client does. With context
// takeover each compressed message is inflated with the window (the last
// 32 KiB) of the compressed messages before it, as RFC 7692 specifies; a
// wrong frame choice by the server shows up as an error or wrong bytes.
type Inflater struct {
	Context bool // the server may keep context (no server_no_context_takeover)
	window  []byte

	Compressed, Plain int // messages seen
}

// NewInflater returns an inflater for the negotiated extension response.
func NewInflater(resp string) *Inflater {
	return &Inflater{Context: !strings.Contains(resp, "server_no_context_takeover")}
}

var errTrailing = errors.New("wstest: compressed message does not end at a flush boundary")

// Message returns f's payload, inflated when RSV1 is set.
func (in *Inflater) Message(f Frame) ([]byte, error) {
	if !f.RSV1 {
		in.Plain++
		return f.Payload, nil
	}
	in.Compressed++
	src := append(bytes.Clone(f.Payload), 0, 0, 0xff, 0xff, 0x01, 0, 0, 0xff, 0xff)
	var dict []byte
	if in.Context {
		dict = in.window
	}
	r := flate.NewReaderDict(bytes.NewReader(src), dict)
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("inflate: %w (%w)", err, errTrailing)
	}
	if in.Context {
		in.window = append(in.window, out...)
		if n := len(in.window); n > 32<<10 {
			in.window = append([]byte(nil), in.window[n-32<<10:]...)
		}
	}
	return out, nil
}
