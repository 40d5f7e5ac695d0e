// Package admin serves the operator API of PROTOCOL.md ("Admin API"): JSON
// snapshots (stats, health, metrics, connections), the operator's levers
// (flush, drain, closing one connection), Prometheus exposition at /metrics
// and the orchestrator probes /livez and /readyz.
//
// It reads plain snapshot structs through small interfaces (see Provider)
// and never reaches into the other packages' internals. Mutating calls are
// guarded (see auth.go): a bearer token when admin.token is set, loopback
// callers only when it is not. The API can share the WebSocket listener
// (Register) or run on its own address (Start, admin.listen).
package admin
