package loadtest

import (
	"bytes"
	"compress/flate"
	"fmt"
	"testing"
)

// stream compresses messages as one permessage-deflate stream with context
// takeover (each flushed, the 00 00 ff ff tail removed).
type stream struct {
	buf bytes.Buffer
	w   *flate.Writer
}

func newStream(t *testing.T) *stream {
	s := &stream{}
	w, err := flate.NewWriter(&s.buf, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.w = w
	return s
}

func (s *stream) frame(t *testing.T, msg string) []byte {
	s.buf.Reset()
	if _, err := s.w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := s.w.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(bytes.TrimSuffix(s.buf.Bytes(), []byte{0, 0, 0xff, 0xff}))
}

func TestInflaterSharesDecodingOnlyBetweenEqualHistories(t *testing.T) {
	a, b := newStream(t), newStream(t)
	za, zb, zc := newInflater("permessage-deflate"), newInflater("permessage-deflate"), newInflater("permessage-deflate")
	for i := 0; i < 300; i++ {
		msg := fmt.Sprintf(`{"type":"trade","payload":{"seq":%d,"price":"%d.25","pad":"%0200d"}}`, i, 50000+i%7, i)
		fa := a.frame(t, msg)
		// b's history differs from a's in its first message only.
		other := msg
		if i == 0 {
			other = `{"type":"ticker","x":1}`
		}
		fb := b.frame(t, other)
		for name, dec := range map[string]struct {
			z     *inflater
			frame []byte
			want  string
		}{"a1": {za, fa, msg}, "a2": {zb, fa, msg}, "b": {zc, fb, other}} {
			got, err := dec.z.inflate(dec.frame)
			if err != nil || string(got) != dec.want {
				t.Fatalf("message %d, connection %s: %q, %v; want %q", i, name, got, err, dec.want)
			}
		}
	}
	if za.key != zb.key || za.key == zc.key {
		t.Fatalf("history keys a1 %x, a2 %x, b %x: want a1 = a2 ≠ b", za.key, zb.key, zc.key)
	}
}
