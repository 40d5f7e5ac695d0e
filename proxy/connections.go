package proxy

import (
	"cmp"
	"slices"

	"wsproxy/pool"
)

// ConnInfo is one connection in the admin listing: the pool's counters, the
// client's filters, and whether it receives every message (no filter).
type ConnInfo struct {
	pool.ConnStats
	Filters     []FilterInfo `json:"filters"`
	ReceivesAll bool         `json:"receivesAll"`
}

// FilterInfo is one filter of a connection, as the client's subscribed reply
// showed it.
type FilterInfo struct {
	ID        string   `json:"filterId"`
	Exchange  []string `json:"exchange"`
	Symbols   []string `json:"symbols"`
	DataTypes []string `json:"dataTypes"`
}

// ConnectionPage is one page of the connection listing, oldest first.
type ConnectionPage struct {
	Total       int        `json:"total"`
	Offset      int        `json:"offset"`
	Limit       int        `json:"limit"`
	Connections []ConnInfo `json:"connections"`
}

// Connections lists live connections ordered by connection time (then id),
// skipping offset and returning at most limit of them.
func (s *Server) Connections(offset, limit int) ConnectionPage {
	var all []*pool.Conn
	s.pool.Each(func(c *pool.Conn) { all = append(all, c) })
	slices.SortFunc(all, func(a, b *pool.Conn) int {
		if c := a.ConnectedAt().Compare(b.ConnectedAt()); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(len(a.ID()), len(b.ID())), cmp.Compare(a.ID(), b.ID()))
	})
	page := ConnectionPage{Total: len(all), Offset: max(offset, 0), Limit: max(limit, 0), Connections: []ConnInfo{}}
	if page.Offset < len(all) {
		all = all[page.Offset:]
		for _, c := range all[:min(page.Limit, len(all))] {
			page.Connections = append(page.Connections, s.connInfo(c))
		}
	}
	return page
}

// Connection returns one live connection by id.
func (s *Server) Connection(id string) (ConnInfo, bool) {
	c, ok := s.pool.Lookup(id)
	if !ok {
		return ConnInfo{}, false
	}
	return s.connInfo(c), true
}

// CloseConnection closes the live connection with the given id with code
// and reason after its pending frames, and reports whether it existed.
func (s *Server) CloseConnection(id string, code int, reason string) bool {
	c, ok := s.pool.Lookup(id)
	if !ok {
		return false
	}
	c.Close(code, reason)
	return true
}

func (s *Server) connInfo(c *pool.Conn) ConnInfo {
	ci := ConnInfo{ConnStats: c.Stats(), Filters: []FilterInfo{}, ReceivesAll: s.index.Unfiltered(c)}
	for id, f := range s.index.Filters(c) {
		ci.Filters = append(ci.Filters, FilterInfo{ID: id, Exchange: nonNil(f.Exchanges), Symbols: nonNil(f.Symbols), DataTypes: nonNil(f.DataTypes)})
	}
	slices.SortFunc(ci.Filters, func(a, b FilterInfo) int {
		return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), cmp.Compare(a.ID, b.ID))
	})
	return ci
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// Flush starts a write of every pending frame on every connection now,
// whatever batch.flush_interval says, and reports what it started.
func (s *Server) Flush() pool.FlushResult { return s.pool.FlushAll() }

// DrainState reports the drain under way, or Draining false when none has
// started.
func (s *Server) DrainState() DrainStatus {
	s.op.drainMu.Lock()
	defer s.op.drainMu.Unlock()
	if s.op.drain == nil {
		return DrainStatus{Remaining: s.pool.Len()}
	}
	st := *s.op.drain
	st.Remaining = s.pool.Len()
	return st
}
