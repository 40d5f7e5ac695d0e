package wsframe_test

import (
	"net"
	"strings"
	"testing"

	"wsproxy/internal/wsframe"
)

// With ControlReturns a ping or pong between messages hands control back
// to the caller as (0, nil, nil), after its callback ran; one inside a
// fragmented message does not interrupt the message. Without it control
// frames are read past.
func TestControlReturns(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	var stream []byte
	stream = append(stream, maskedFrame(0x81, []byte("one"), key)...)
	stream = append(stream, maskedFrame(0x89, []byte("p"), key)...)  // ping between messages
	stream = append(stream, maskedFrame(0x8a, nil, key)...)          // pong between messages
	stream = append(stream, maskedFrame(0x01, []byte("tw"), key)...) // fragment
	stream = append(stream, maskedFrame(0x89, []byte("q"), key)...)  // ping inside the message
	stream = append(stream, maskedFrame(0x80, []byte("o"), key)...)  // last fragment
	for _, returns := range []bool{true, false} {
		client, server := net.Pipe()
		go func() {
			_, _ = client.Write(stream)
			_ = client.Close()
		}()
		var pings []string
		pongs := 0
		r := &wsframe.Reader{Conn: server, Limit: 1 << 10, ControlReturns: returns,
			Control: controls{ping: func(d string) { pings = append(pings, d) }, pong: func() { pongs++ }}}
		var got []string
		for {
			mt, p, err := r.ReadMessage()
			if err != nil {
				break
			}
			if mt == 0 {
				got = append(got, "control")
				continue
			}
			got = append(got, string(p))
		}
		server.Close()
		want := "one,two"
		if returns {
			want = "one,control,control,two"
		}
		if s := strings.Join(got, ","); s != want {
			t.Errorf("ControlReturns %v: read %s, want %s", returns, s, want)
		}
		if len(pings) != 2 || pings[0] != "p" || pings[1] != "q" || pongs != 1 {
			t.Errorf("ControlReturns %v: pings %q, pongs %d", returns, pings, pongs)
		}
	}
}

// controls is a Control made of optional functions.
type controls struct {
	ping  func(string)
	pong  func()
	close func(int)
}

func (c controls) OnPing(d string) {
	if c.ping != nil {
		c.ping(d)
	}
}

func (c controls) OnPong() {
	if c.pong != nil {
		c.pong()
	}
}

func (c controls) OnClose(code int) {
	if c.close != nil {
		c.close(code)
	}
}
