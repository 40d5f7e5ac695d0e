package pool

import (
	"net"
	"testing"
	"time"
)

type nopConn struct{ net.Conn }

func (nopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (nopConn) Close() error                     { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }

// TestFirstPingsAreSpread: connections added at the same moment get their
// first ping spread over the second half of the heartbeat interval, not
// all in one tick; by a full interval every one is pinged.
func TestFirstPingsAreSpread(t *testing.T) {
	const interval, n = time.Second, 400
	p := &Pool{cfg: Config{HeartbeatInterval: interval, ConnectionTimeout: time.Hour, SlowConsumerMaxLag: time.Hour,
		QueueMaxMessages: 10, QueueMaxBytes: 1 << 20, BatchMaxMessages: 10, BatchMaxBytes: 1 << 16, WriteTimeout: time.Second},
		conns: map[*Conn]struct{}{}, byID: map[string]*Conn{}}
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i] = p.Add(nopConn{}, ConnOptions{Hold: true})
	}
	t0 := conns[n-1].connectedAt.UnixNano()
	due := func(at time.Duration) int {
		k := 0
		for _, c := range conns {
			if t0+int64(at)-c.lastPing >= int64(interval) {
				k++
			}
		}
		return k
	}
	if k := due(interval / 2); k > n/50 {
		t.Fatalf("%d of %d connections due for their first ping half an interval after connecting", k, n)
	}
	if k := due(3 * interval / 4); k < n/4 || k > 3*n/4 {
		t.Fatalf("%d of %d due at three quarters of an interval, want about half", k, n)
	}
	if k := due(interval + time.Millisecond); k != n {
		t.Fatalf("%d of %d due after a full interval", k, n)
	}
}
