package loadtest

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/maphash"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// deflateOffer is what browsers offer.
const deflateOffer = "permessage-deflate; client_max_window_bits"

// inflater decodes one connection's compressed frames as a browser does:
// with the window of the earlier compressed messages unless the server
// agreed to server_no_context_takeover.
//
// Connections that received the same compressed payloads since they
// connected hold the same window, so they decode the next payload alike: the
// load tool inflates such a payload once for all of them (inflateCache) —
// on a shared machine the clients' decoding would otherwise take CPU from
// the server being measured. A connection's state is a key naming its
// history and the (shared, never modified) window it leads to.
type inflater struct {
	ctx    bool
	key    uint64
	window []byte
}

func newInflater(resp string) *inflater {
	if !strings.Contains(resp, "permessage-deflate") {
		return nil
	}
	return &inflater{ctx: !strings.Contains(resp, "server_no_context_takeover")}
}

var deflateTail = []byte{0, 0, 0xff, 0xff, 0x01, 0, 0, 0xff, 0xff}

// inflated is one decoded payload: the message and, with context takeover,
// the window after it. Both are shared and read-only.
type inflated struct {
	msg, window []byte
}

// inflateCache maps (history key, payload) to what it decodes to. It keeps
// two generations of at most inflateCacheSize entries each, so that it
// holds the recent messages of every stream whatever the run's length.
// Lookups take no lock: every reading goroutine of the process uses it.
type inflateCache struct {
	cur, prev atomic.Pointer[inflateGen]
	rotate    sync.Mutex
}

type inflateGen struct {
	m sync.Map // uint64 → inflated
	n atomic.Int64
}

const inflateCacheSize = 1024

var (
	zcache    = newInflateCache()
	zseed     = maphash.MakeSeed()
	zreaders  = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}
	zwindowSz = 32 << 10
)

func newInflateCache() *inflateCache {
	c := &inflateCache{}
	c.cur.Store(new(inflateGen))
	c.prev.Store(new(inflateGen))
	return c
}

func (c *inflateCache) get(k uint64) (inflated, bool) {
	if v, ok := c.cur.Load().m.Load(k); ok {
		return v.(inflated), true
	}
	if v, ok := c.prev.Load().m.Load(k); ok {
		return v.(inflated), true
	}
	return inflated{}, false
}

func (c *inflateCache) put(k uint64, v inflated) {
	g := c.cur.Load()
	g.m.Store(k, v)
	if g.n.Add(1) < inflateCacheSize {
		return
	}
	c.rotate.Lock()
	defer c.rotate.Unlock()
	if c.cur.Load() == g {
		c.prev.Store(g)
		c.cur.Store(new(inflateGen))
	}
}

// inflate returns the message (shared: read it, never modify it).
func (z *inflater) inflate(p []byte) ([]byte, error) {
	var h maphash.Hash
	h.SetSeed(zseed)
	if z.ctx {
		var k [8]byte
		binary.LittleEndian.PutUint64(k[:], z.key)
		_, _ = h.Write(k[:])
	}
	_, _ = h.Write(p)
	key := h.Sum64()
	v, ok := zcache.get(key)
	if !ok {
		var err error
		if v, err = z.decode(p); err != nil {
			return nil, err
		}
		zcache.put(key, v)
	}
	if z.ctx {
		z.key, z.window = key, v.window
	}
	return v.msg, nil
}

// decode inflates p with the connection's window.
func (z *inflater) decode(p []byte) (inflated, error) {
	r := zreaders.Get().(io.ReadCloser)
	defer zreaders.Put(r)
	src := bytes.NewReader(append(p[:len(p):len(p)], deflateTail...))
	var dict []byte
	if z.ctx {
		dict = z.window
	}
	if err := r.(flate.Resetter).Reset(src, dict); err != nil {
		return inflated{}, err
	}
	msg, err := io.ReadAll(r)
	if err != nil {
		return inflated{}, err
	}
	v := inflated{msg: msg}
	if z.ctx {
		w := make([]byte, 0, min(zwindowSz, len(z.window)+len(msg)))
		if keep := cap(w) - len(msg); keep > 0 {
			w = append(w, z.window[len(z.window)-keep:]...)
		}
		v.window = append(w, msg[max(0, len(msg)-cap(w)):]...)
	}
	return v, nil
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
