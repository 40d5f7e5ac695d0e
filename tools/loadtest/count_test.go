package loadtest

import (
	"bufio"
	"io"
	"net"
	"testing"
)

// serverFrame is an unmasked server frame; rsv1 marks it compressed.
func serverFrame(op byte, rsv1 bool, payload []byte) []byte {
	b0 := 0x80 | op
	if rsv1 {
		b0 |= 0x40
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	default:
		b = append(b, 126, byte(n>>8), byte(n))
	}
	return append(b, payload...)
}

// TestCountOnlyConnectionCountsDataFrames feeds a count-only connection the
// frames a ready connection can get — compressed data frames (whose payload
// is not decoded: here it is not even valid deflate), uncompressed data
// frames, an uncompressed text frame without the publisher's timestamp (a
// reply), and a ping — and asserts that it counts exactly the data frames,
// answers the ping and stops at the close frame.
func TestCountOnlyConnectionCountsDataFrames(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	sock := &sockCounter{Conn: client}
	c := &wsConn{nc: client, br: bufio.NewReaderSize(sock, 4096), sock: sock, z: newInflater("permessage-deflate"), countOnly: true}
	done := make(chan struct{})
	go func() { defer close(done); c.countLoop() }()

	long := make([]byte, 300) // a 16-bit length
	for i := range long {
		long[i] = byte(i)
	}
	frames := [][]byte{
		serverFrame(0x1, true, []byte{0xde, 0xad, 0xbe, 0xef}),
		serverFrame(0x1, false, []byte(`{"type":"trade","payload":{"data":{"sentAt":1723190400000000001}}}`)),
		serverFrame(0x1, false, []byte(`{"type":"pong"}`)),
		serverFrame(0x1, true, long),
	}
	for _, f := range frames {
		if _, err := server.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := server.Write(serverFrame(0x9, false, []byte("hb"))); err != nil {
		t.Fatal(err)
	}
	pong := make([]byte, 2+4+2) // masked client frame: header, zero key, "hb"
	if _, err := io.ReadFull(server, pong); err != nil {
		t.Fatal(err)
	}
	if pong[0] != 0x8A || string(pong[6:]) != "hb" {
		t.Fatalf("reply to the ping: % x, want a pong carrying \"hb\"", pong)
	}
	if _, err := server.Write(serverFrame(0x1, true, []byte{1, 2, 3})); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write(serverFrame(0x8, false, nil)); err != nil {
		t.Fatal(err)
	}
	<-done
	if got := c.received.Load(); got != 4 {
		t.Fatalf("counted %d data frames, want 4 (3 compressed, 1 uncompressed with sentAt; the reply and the ping not)", got)
	}
	if !c.closed.Load() {
		t.Fatal("connection not marked closed after the close frame")
	}
}
