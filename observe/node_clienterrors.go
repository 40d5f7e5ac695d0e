package observe

import "sync/atomic"

// clientErrors is the node's tally of client errors. Safe for concurrent use.
type clientErrors struct {
	n [NumClientReasons]atomic.Uint64
	// budgetCloses counts connections closed for going over the bad-frame
	// budget.
	budgetCloses atomic.Uint64
}

// ClientError counts one client error for r.
func (n *Node) ClientError(r ClientErrorReason) { n.clientErrs.n[r].Add(1) }

// ClientErrorCount returns how many client errors for r were counted.
func (n *Node) ClientErrorCount(r ClientErrorReason) uint64 { return n.clientErrs.n[r].Load() }

// BudgetClose counts a connection closed for going over the bad-frame
// budget.
func (n *Node) BudgetClose() { n.clientErrs.budgetCloses.Add(1) }

// ClientErrors returns every client-caused event since start by reason:
// the ClientErrorReason names, plus the upgrade refusals of Rejections
// (origin, auth, per-address and connect rates) under their Reject* names.
func (n *Node) ClientErrors() map[string]uint64 {
	rej := n.p.Rejections()
	out := make(map[string]uint64, int(NumClientReasons)+len(rej))
	for i := range n.clientErrs.n {
		out[ClientErrorReason(i).String()] = n.clientErrs.n[i].Load()
	}
	ps := n.p.Pool.Stats()
	out[ClientReset.String()] += ps.ClientResets
	out[ClientWriteTimeout.String()] += ps.WriteTimeouts
	for k, v := range rej {
		out[k] = v
	}
	return out
}

// ErrorBudgetCloses returns how many connections were closed with 1008 for
// sending more than limits.max_bad_frames_per_minute bad frames.
func (n *Node) ErrorBudgetCloses() uint64 { return n.clientErrs.budgetCloses.Load() }

// clientTotal is the sum of the client errors the sessions counted (for
// the legacy errorsEncountered figure).
func (n *Node) clientTotal() uint64 {
	var t uint64
	for i := range n.clientErrs.n {
		t += n.clientErrs.n[i].Load()
	}
	return t
}
