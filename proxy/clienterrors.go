package proxy

import (
	"sync/atomic"

	"github.com/fasthttp/websocket"

	"wsproxy/internal/admission"
	"wsproxy/observe"
)

// reasonErrorBudget is the close reason of a client over
// limits.max_bad_frames_per_minute.
const reasonErrorBudget = "Too many invalid messages"

// clientErrors is the node's tally of client errors. Safe for concurrent use.
type clientErrors struct {
	n [observe.NumClientReasons]atomic.Uint64
	// budgetCloses counts connections closed for going over the bad-frame
	// budget.
	budgetCloses atomic.Uint64
}

// ClientErrors returns every client-caused event since start by reason:
// the ClientErrorReason names, plus the upgrade refusals of Rejections
// (origin, auth, per-address and connect rates) under their Reject* names.
func (s *Server) ClientErrors() map[string]uint64 {
	out := make(map[string]uint64, int(observe.NumClientReasons)+len(admission.Reasons))
	for i := range s.clientErrs.n {
		out[observe.ClientErrorReason(i).String()] = s.clientErrs.n[i].Load()
	}
	ps := s.pool.Stats()
	out[observe.ClientReset.String()] += ps.ClientResets
	out[observe.ClientWriteTimeout.String()] += ps.WriteTimeouts
	for k, v := range s.guard.Rejections() {
		out[k] = v
	}
	return out
}

// ErrorBudgetCloses returns how many connections were closed with 1008 for
// sending more than limits.max_bad_frames_per_minute bad frames.
func (s *Server) ErrorBudgetCloses() uint64 { return s.clientErrs.budgetCloses.Load() }

// clientTotal is the sum of the client errors the sessions counted (for
// the legacy errorsEncountered figure).
func (s *Server) clientTotal() uint64 {
	var n uint64
	for i := range s.clientErrs.n {
		n += s.clientErrs.n[i].Load()
	}
	return n
}

// clientError counts one client error of this connection, whatever reply
// (if any) the protocol gives it, and closes the connection with 1008 once
// its bad frames go over the budget. It reports whether the connection may
// go on.
func (ss *session) clientError(r observe.ClientErrorReason) bool {
	ss.s.clientErrs.n[r].Add(1)
	ss.c.CountError()
	if !r.BadFrame() || ss.budget.Take() {
		return true
	}
	if !ss.c.Closing() {
		ss.s.clientErrs.budgetCloses.Add(1)
		ss.log.Info().Int("per_minute", ss.budget.PerMinute()).Msg("closing: bad-frame budget exceeded")
		ss.c.Close(websocket.ClosePolicyViolation, reasonErrorBudget)
	}
	return false
}
