package admin

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

// listConnections lists the live connections of src ordered by connection
// time (then id), skipping offset and returning at most limit of them.
func listConnections(src ConnectionSource, offset, limit int) ConnectionPage {
	var all []*pool.Conn
	src.Pool().Each(func(c *pool.Conn) { all = append(all, c) })
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
			page.Connections = append(page.Connections, connInfo(src, c))
		}
	}
	return page
}

// findConnection returns one live connection of src by id.
func findConnection(src ConnectionSource, id string) (ConnInfo, bool) {
	c, ok := src.Pool().Lookup(id)
	if !ok {
		return ConnInfo{}, false
	}
	return connInfo(src, c), true
}

// closeConnection closes the live connection of src with the given id with
// code and reason after its pending frames, and reports whether it existed.
func closeConnection(src ConnectionSource, id string, code int, reason string) bool {
	c, ok := src.Pool().Lookup(id)
	if !ok {
		return false
	}
	c.Close(code, reason)
	return true
}

func connInfo(src ConnectionSource, c *pool.Conn) ConnInfo {
	ci := ConnInfo{ConnStats: c.Stats(), Filters: []FilterInfo{}, ReceivesAll: src.Index().Unfiltered(c)}
	for id, f := range src.Index().Filters(c) {
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
