package pool_test

import (
	"sync"
	"testing"
	"time"

	"wsproxy/internal/configtest"
	"wsproxy/pool"
)

// deadlineConn checks that every write has a deadline far enough ahead and
// counts how often the deadline is set.
type deadlineConn struct {
	recConn
	dmu      sync.Mutex
	deadline time.Time
	sets     int
	bad      []string
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.dmu.Lock()
	defer d.dmu.Unlock()
	d.deadline = t
	d.sets++
	return nil
}

func (d *deadlineConn) Write(b []byte) (int, error) {
	d.dmu.Lock()
	if left := time.Until(d.deadline); left < 5*time.Second || left > 10*time.Second {
		d.bad = append(d.bad, left.String())
	}
	d.dmu.Unlock()
	return d.recConn.Write(b)
}

// TestWriteDeadlineArmedOncePerHalfTimeout: each write has a deadline between
// WriteTimeout/2 and WriteTimeout ahead, but the timer is not re-armed per
// write.
func TestWriteDeadlineArmedOncePerHalfTimeout(t *testing.T) {
	p := configtest.NewPool(t, pool.Config{WriteTimeout: 10 * time.Second}, nil)
	dc := &deadlineConn{}
	c := p.Add(dc, pool.ConnOptions{ID: "d"})
	const n = 50
	for i := 0; i < n; i++ {
		c.Enqueue(dataFrame(i+1), uint64(i+1))
		waitFor(t, "write", func() bool { return p.QueuedFrames() == 0 && c.Stats().MessagesSent == uint64(i+1) })
	}
	dc.dmu.Lock()
	defer dc.dmu.Unlock()
	if len(dc.bad) > 0 {
		t.Fatalf("writes with a deadline outside [5s, 10s] ahead: %v", dc.bad)
	}
	if dc.sets != 1 {
		t.Fatalf("deadline set %d times for %d writes within 5s, want 1", dc.sets, n)
	}
}

// TestStuckClientStillTimesOut: with lazily re-armed deadlines, a client that
// stops reading is still cut off within about WriteTimeout.
func TestStuckClientStillTimesOut(t *testing.T) {
	_, server := tcpPair(t) // the client never reads
	p := configtest.NewPool(t, pool.Config{WriteTimeout: 300 * time.Millisecond, QueueMaxBytes: 8 << 20, QueueMaxMessages: 100000}, nil)
	c := p.Add(server, pool.ConnOptions{ID: "stuck"})
	big := &pool.Frame{Op: pool.OpText, Data: make([]byte, 64<<10), IngestAt: 1}
	var seq uint64
	waitFor(t, "the stuck client to be disconnected", func() bool {
		seq++
		c.Enqueue(big, seq)
		return c.Closing()
	})
	if st := p.Stats(); st.ErrorConnections != 1 {
		t.Fatalf("error connections = %d, want 1", st.ErrorConnections)
	}
}
