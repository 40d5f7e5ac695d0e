package pool_test

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"wsproxy/internal/configtest"
	"wsproxy/pool"
)

func TestQueueBoundDropsOldestAndCounts(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{QueueMaxMessages: 100, FlushInterval: time.Hour, BatchMaxMessages: 1000}, nil)
	rc := &recConn{}
	c := p.Add(rc, pool.ConnOptions{ID: "a"})
	for i := 0; i < 250; i++ {
		if !c.Enqueue(dataFrame(i), uint64(i+1)) {
			t.Fatalf("enqueue %d refused", i)
		}
	}
	st := c.Stats()
	if st.QueueDepth != 100 || st.Dropped != 150 {
		t.Fatalf("depth %d dropped %d, want 100 and 150", st.QueueDepth, st.Dropped)
	}
	if got := p.ShedTotal(pool.ReasonQueueFull); got != 150 {
		t.Fatalf("shed queue_full = %d", got)
	}
	if r := p.FlushAll(); r.Messages != 100 {
		t.Fatalf("flush = %+v", r)
	}
	waitFor(t, "100 frames written", func() bool { return len(rc.frames(t)) == 100 })
	fs := rc.frames(t)
	for i, f := range fs {
		if want := `{"n":` + strconv.Itoa(150+i) + `}`; f.payload != want || f.op != 1 {
			t.Fatalf("frame %d = %d %s, want newest frames in order (%s)", i, f.op, f.payload, want)
		}
	}
	if rc.writeCount() != 1 {
		t.Fatalf("100 frames took %d writes, want 1 (one flush per batch)", rc.writeCount())
	}
}

func TestByteBound(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{QueueMaxBytes: 1024, FlushInterval: time.Hour, BatchMaxMessages: 1000}, nil)
	c := p.Add(&recConn{}, pool.ConnOptions{})
	big := &pool.Frame{Op: pool.OpText, Data: bytes.Repeat([]byte("x"), 400), IngestAt: 1}
	for i := 0; i < 10; i++ {
		c.Enqueue(big, 0)
	}
	if st := c.Stats(); st.QueueBytes > 1024 || st.QueueDepth != 2 {
		t.Fatalf("queue %d frames %d bytes, want 2 frames within 1024 bytes", st.QueueDepth, st.QueueBytes)
	}
	huge := &pool.Frame{Op: pool.OpText, Data: bytes.Repeat([]byte("x"), 2000), IngestAt: 1}
	if c.Enqueue(huge, 0) || p.ShedTotal(pool.ReasonTooLarge) != 1 {
		t.Fatal("frame larger than the queue bound was not refused and counted")
	}
}

func TestBatchLimitSplitsWrites(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{FlushInterval: time.Hour, BatchMaxMessages: 10}, nil)
	rc := &recConn{}
	c := p.Add(rc, pool.ConnOptions{})
	for i := 0; i < 35; i++ {
		c.Enqueue(dataFrame(i), 0)
	}
	// 30 of them went out as three full batches without waiting for the interval.
	waitFor(t, "three full batches", func() bool { return len(rc.frames(t)) >= 30 })
	p.FlushAll()
	waitFor(t, "all 35", func() bool { return len(rc.frames(t)) == 35 })
	if w := rc.writeCount(); w != 4 {
		t.Fatalf("35 frames with batch 10 took %d writes, want 4", w)
	}
}

func TestDedupBySeq(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{FlushInterval: time.Hour}, nil)
	c := p.Add(&recConn{}, pool.ConnOptions{})
	f := dataFrame(1)
	if !c.Enqueue(f, 7) || c.Enqueue(f, 7) || !c.Enqueue(f, 8) {
		t.Fatal("same seq must be accepted once")
	}
	if d := c.Stats().QueueDepth; d != 2 {
		t.Fatalf("depth %d", d)
	}
}

func TestControlFramesNeverShed(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{QueueMaxMessages: 5, FlushInterval: time.Hour, BatchMaxMessages: 1000}, nil)
	rc := &recConn{}
	c := p.Add(rc, pool.ConnOptions{})
	c.Send(pool.NewControl([]byte(`{"type":"welcome"}`)))
	waitFor(t, "welcome", func() bool { return len(rc.frames(t)) == 1 })
	for i := 0; i < 20; i++ {
		c.Enqueue(dataFrame(i), 0)
	}
	c.Close(1001, "Server shutdown")
	waitFor(t, "close frame", func() bool { fs := rc.frames(t); return len(fs) > 0 && fs[len(fs)-1].op == 8 })
	fs := rc.frames(t)
	if len(fs) != 1+5+1 {
		t.Fatalf("wrote %d frames, want welcome + 5 newest data + close", len(fs))
	}
	cf := fs[len(fs)-1].payload
	if binary.BigEndian.Uint16([]byte(cf)) != 1001 || cf[2:] != "Server shutdown" {
		t.Fatalf("close payload %q", cf)
	}
	if c.Enqueue(dataFrame(99), 0) {
		t.Fatal("enqueue accepted after close")
	}
}

func TestFramesAreUnmaskedAndSized(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{}, nil)
	rc := &recConn{}
	c := p.Add(rc, pool.ConnOptions{})
	sizes := []int{0, 125, 126, 65535, 65536, 300000}
	for _, n := range sizes {
		c.Send(pool.NewControl(bytes.Repeat([]byte("a"), n)))
	}
	waitFor(t, "frames", func() bool { return len(rc.frames(t)) == len(sizes) })
	for i, f := range rc.frames(t) {
		if len(f.payload) != sizes[i] {
			t.Fatalf("frame %d length %d, want %d", i, len(f.payload), sizes[i])
		}
	}
}
