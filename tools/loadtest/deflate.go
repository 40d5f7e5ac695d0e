package loadtest

import (
	"bytes"
	"compress/flate"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// deflateOffer is what browsers offer.
const deflateOffer = "permessage-deflate; client_max_window_bits"

// inflater decodes one connection's compressed frames as a browser does:
// with the window of the earlier compressed messages unless the server
// agreed to server_no_context_takeover.
type inflater struct {
	ctx    bool
	window []byte
	src    bytes.Reader
	r      io.ReadCloser
	out    bytes.Buffer
}

func newInflater(resp string) *inflater {
	if !strings.Contains(resp, "permessage-deflate") {
		return nil
	}
	z := &inflater{ctx: !strings.Contains(resp, "server_no_context_takeover")}
	z.r = flate.NewReader(&z.src)
	return z
}

var deflateTail = []byte{0, 0, 0xff, 0xff, 0x01, 0, 0, 0xff, 0xff}

// inflate returns the message; valid until the next call.
func (z *inflater) inflate(p []byte) ([]byte, error) {
	z.src.Reset(append(p, deflateTail...))
	var dict []byte
	if z.ctx {
		dict = z.window
	}
	if err := z.r.(flate.Resetter).Reset(&z.src, dict); err != nil {
		return nil, err
	}
	z.out.Reset()
	if _, err := z.out.ReadFrom(z.r); err != nil {
		return nil, err
	}
	b := z.out.Bytes()
	if z.ctx {
		z.window = append(z.window, b...)
		if n := len(z.window); n > 32<<10 {
			z.window = append(z.window[:0], z.window[n-32<<10:]...)
		}
	}
	return b, nil
}

// frameLen is the wire size of an unmasked server frame of n payload bytes.
func frameLen(n uint64) uint64 {
	switch {
	case n <= 125:
		return 2 + n
	case n <= 0xffff:
		return 4 + n
	}
	return 10 + n
}

// cpuNS sums the user and system CPU time of pids (from /proc/PID/stat),
// in nanoseconds.
func cpuNS(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces).
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			s = s[i+1:]
		}
		f := strings.Fields(s)
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += (ut + st) * int64(time.Second) / clockTicks
	}
	return total
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100
