package wsdeflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"sync"
	"testing"
)

// fuzzWriters reuse compressors (about 1 MB each) between executions.
var fuzzWriters [10]sync.Pool

// FuzzInflate feeds the client-message inflater arbitrary compressed data
// and compressions of arbitrary messages: it never panics, never returns
// more than the limit, reports only ErrTooBig or ErrInvalid, and returns
// exactly what was compressed.
func FuzzInflate(f *testing.F) {
	f.Add([]byte(`{"type":"ping"}`), []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, uint16(64), uint8(1))
	f.Add(bytes.Repeat([]byte("a"), 5000), []byte{0x00, 0x00, 0xff, 0xff}, uint16(4096), uint8(9))
	f.Add([]byte{}, []byte{0x01, 0x00, 0x00, 0xff, 0xff}, uint16(0), uint8(5))
	f.Add([]byte("x"), []byte{0xff, 0xff, 0xff}, uint16(10), uint8(2))
	f.Fuzz(func(t *testing.T, msg, raw []byte, limit uint16, level uint8) {
		lim := int64(limit)
		out, err := Inflate(nil, bytes.Clone(raw), lim)
		if err != nil && !errors.Is(err, ErrTooBig) && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v", err)
		}
		if int64(len(out)) > lim+1 {
			t.Fatalf("%d bytes out with limit %d", len(out), lim)
		}

		var b bytes.Buffer
		lv := int(level%9) + 1
		w, _ := fuzzWriters[lv].Get().(*flate.Writer)
		if w == nil {
			w, _ = flate.NewWriter(nil, lv)
		}
		w.Reset(&b)
		_, _ = w.Write(msg)
		_ = w.Flush()
		fuzzWriters[lv].Put(w)
		z := bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
		out, err = Inflate([]byte("prefix"), z, lim)
		switch {
		case int64(len(msg)) > lim:
			if !errors.Is(err, ErrTooBig) {
				t.Fatalf("%d bytes with limit %d: %v", len(msg), lim, err)
			}
		case err != nil:
			t.Fatalf("valid compression of %d bytes: %v", len(msg), err)
		case !bytes.Equal(out, append([]byte("prefix"), msg...)):
			t.Fatalf("inflated %q, want %q", out, msg)
		}
	})
}
