// Package wsdeflate is the read side of permessage-deflate (RFC 7692):
// negotiation at the upgrade and inflation of compressed client messages.
// Compression of server frames is pool's (pool/deflate.go).
package wsdeflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"

	"wsproxy/pool"
)

// Inflate's errors.
var (
	// ErrTooBig: the message inflates to more than the limit (close 1009).
	ErrTooBig = errors.New("wsdeflate: message too big")
	// ErrInvalid: the message does not inflate (close 1007).
	ErrInvalid = errors.New("wsdeflate: invalid compressed data")
)

// Negotiate picks the first permessage-deflate offer of the
// Sec-WebSocket-Extensions values that the server can honour and returns the
// response header value and what was agreed; "" and pool.CompressNone when
// none can be accepted (the connection then works uncompressed).
//
// The server always answers client_no_context_takeover (RFC 7692 7.1.1.2
// lets it), so that client messages inflate without a per-connection window.
// It keeps context only in shared_stream mode and when the client did not ask
// for server_no_context_takeover. compress/flate always uses a 32 KiB window,
// so offers limiting server_max_window_bits below 15 are declined.
func Negotiate(values [][]byte, mode pool.DeflateMode) (string, pool.Compression) {
	for _, v := range values {
		for _, offer := range strings.Split(string(v), ",") {
			if resp, c, ok := acceptOffer(offer, mode); ok {
				return resp, c
			}
		}
	}
	return "", pool.CompressNone
}

func acceptOffer(offer string, mode pool.DeflateMode) (string, pool.Compression, bool) {
	parts := strings.Split(offer, ";")
	if !strings.EqualFold(strings.TrimSpace(parts[0]), "permessage-deflate") {
		return "", 0, false
	}
	var serverNoCtx, clientNoCtx, serverBits, clientBits bool
	clientBitsValue := ""
	for _, p := range parts[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.Trim(strings.TrimSpace(value), `"`)
		switch name {
		case "server_no_context_takeover":
			if serverNoCtx || hasValue {
				return "", 0, false
			}
			serverNoCtx = true
		case "client_no_context_takeover":
			if clientNoCtx || hasValue {
				return "", 0, false
			}
			clientNoCtx = true
		case "server_max_window_bits":
			if serverBits || !hasValue || windowBits(value) != 15 {
				return "", 0, false
			}
			serverBits = true
		case "client_max_window_bits":
			if clientBits || (hasValue && windowBits(value) == 0) {
				return "", 0, false
			}
			clientBits = true
			clientBitsValue = value
		default:
			return "", 0, false
		}
	}
	c := pool.CompressContext
	if serverNoCtx || mode != pool.DeflateSharedStream {
		c = pool.CompressPerMessage
	}
	var b strings.Builder
	b.WriteString("permessage-deflate")
	if c == pool.CompressPerMessage {
		b.WriteString("; server_no_context_takeover")
	}
	b.WriteString("; client_no_context_takeover")
	if serverBits {
		b.WriteString("; server_max_window_bits=15")
	}
	if clientBitsValue != "" {
		b.WriteString("; client_max_window_bits=" + clientBitsValue)
	}
	return b.String(), c, true
}

// windowBits parses a window-bits value: 8 to 15 in plain decimal, else 0.
func windowBits(s string) int {
	if len(s) == 0 || len(s) > 2 || s[0] == '0' {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 8 || n > 15 {
		return 0
	}
	return n
}

// deflateTail ends every compressed message for inflation: the sync-flush
// marker the sender removed (RFC 7692 7.2.2), then an empty final stored
// block, so that a complete message ends the stream with io.EOF and a
// truncated one fails.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

type inflater struct {
	src bytes.Reader
	r   io.ReadCloser
}

var inflaters = sync.Pool{New: func() any {
	in := &inflater{}
	in.r = flate.NewReader(&in.src)
	return in
}}

// Inflate appends the inflation of the compressed message src (without its
// tail) to dst. More than limit inflated bytes fail with ErrTooBig, data
// that does not inflate with ErrInvalid. src is extended with deflateTail
// in place.
func Inflate(dst, src []byte, limit int64) ([]byte, error) {
	src = append(src, deflateTail...)
	in := inflaters.Get().(*inflater)
	defer inflaters.Put(in)
	in.src.Reset(src)
	if err := in.r.(flate.Resetter).Reset(&in.src, nil); err != nil {
		return dst, ErrInvalid
	}
	base := len(dst)
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		room := dst[len(dst):cap(dst)]
		// Read at most one byte beyond the limit: enough to know.
		if left := limit + 1 - int64(len(dst)-base); int64(len(room)) > left {
			room = room[:left]
		}
		n, err := in.r.Read(room)
		dst = dst[:len(dst)+n]
		if int64(len(dst)-base) > limit {
			return dst, ErrTooBig
		}
		switch {
		case err == io.EOF:
			return dst, nil
		case err != nil:
			return dst, ErrInvalid
		}
	}
}
