package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/compat"
	"wsproxy/internal/admission"
	"wsproxy/observe"
	"wsproxy/pool"
	"wsproxy/subscription"
)

const (
	reasonRateLimit = "Rate limit exceeded"
	// lingerMax bounds what is read and thrown away after a protocol error
	// while waiting for the client to close.
	lingerMax = 4 << 20
)

// ErrIndexKeys is the LIMIT_EXCEEDED answer to a filter that would take a
// connection past limits.max_index_keys.
var ErrIndexKeys = errors.New("proxy: too many index keys for one connection")

// allowMessage applies the message rate to one client frame. Over the rate,
// the first frame is answered with RATE_LIMIT_EXCEEDED; if the client goes
// on past limits.rate_limit_grace more frames before slowing down, the
// connection is closed with 1008. It reports whether to process the frame.
func (ss *session) allowMessage() bool { return ss.allowCost(1) }

// allowCost is allowMessage for a frame that costs n messages of the rate
// (getStats: limits.stats_cost).
func (ss *session) allowCost(n int) bool {
	v := ss.rate.Take(n)
	if v == admission.Allow {
		return true
	}
	ss.s.obs.ClientError(observe.ClientRateLimited)
	ss.c.CountError()
	switch v {
	case admission.Warn:
		ss.sendError(compat.CodeRateLimitExceeded,
			"more than "+strconv.FormatFloat(ss.rate.Rate(), 'f', -1, 64)+" messages per second; slow down or be disconnected")
	case admission.Close:
		ss.log.Info().Uint64("dropped", ss.rate.Dropped()).Msg("closing: message rate exceeded")
		ss.c.Close(websocket.ClosePolicyViolation, reasonRateLimit)
	}
	return false
}

// admitKeys checks limits.max_index_keys before a filter is added.
func (ss *session) admitKeys(f subscription.Filter) (int, error) {
	k := f.IndexKeys()
	if max := ss.s.cfg.Limits.MaxIndexKeys; ss.nkeys+k > max {
		return 0, fmt.Errorf("%w: %w: the filter expands to %d index keys (exchanges × data types × symbols), the connection holds %d of at most %d",
			subscription.ErrLimitExceeded, ErrIndexKeys, k, ss.nkeys, max)
	}
	return k, nil
}

// filterKeys is how many index keys one filter holds; a connection has
// few filters, so a slice costs less than a map.
type filterKeys struct {
	id string
	n  int
}

func (ss *session) addKeys(id string, k int) {
	ss.keys = append(ss.keys, filterKeys{id, k})
	ss.nkeys += k
}

func (ss *session) removeKeys(id string) {
	for i, fk := range ss.keys {
		if fk.id == id {
			ss.nkeys -= fk.n
			ss.keys = append(ss.keys[:i], ss.keys[i+1:]...)
			return
		}
	}
}

func (ss *session) clearKeys() {
	ss.keys = ss.keys[:0]
	ss.nkeys = 0
}

// linger ends a connection after a protocol failure, once its close frame
// is queued: it lets the writer put the close frame on the wire, then
// half-closes and reads what the client still sends (up to its close reply
// and end of stream, or the close grace), so that closing a socket with
// unread input does not reset the connection and destroy the close frame
// before the client reads it.
func (ss *session) linger(nc net.Conn) {
	ss.c.WaitWritten(time.Second)
	pool.HalfClose(nc)
	_ = nc.SetReadDeadline(time.Now().Add(ss.s.pool.Config().CloseGrace))
	_, _ = io.Copy(io.Discard, io.LimitReader(nc, lingerMax))
}

// RateLimited returns how many client messages (pings included) were refused
// by limits.message_rate.
func (s *Server) RateLimited() uint64 { return s.obs.ClientErrorCount(observe.ClientRateLimited) }

// reasonErrorBudget is the close reason of a client over
// limits.max_bad_frames_per_minute.
const reasonErrorBudget = "Too many invalid messages"

// clientError counts one client error of this connection, whatever reply
// (if any) the protocol gives it, and closes the connection with 1008 once
// its bad frames go over the budget. It reports whether the connection may
// go on.
func (ss *session) clientError(r observe.ClientErrorReason) bool {
	ss.s.obs.ClientError(r)
	ss.c.CountError()
	if !r.BadFrame() || ss.budget.Take() {
		return true
	}
	if !ss.c.Closing() {
		ss.s.obs.BudgetClose()
		ss.log.Info().Int("per_minute", ss.budget.PerMinute()).Msg("closing: bad-frame budget exceeded")
		ss.c.Close(websocket.ClosePolicyViolation, reasonErrorBudget)
	}
	return false
}
