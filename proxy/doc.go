// Package proxy runs wsproxy: the fasthttp server and its router, the
// WebSocket upgrade, one read loop per connection (shallow.go), the
// protocol session (session.go), heartbeats, drain and graceful shutdown.
// It wires the other packages together: sources (dataflow) feed the
// dispatch.Dispatcher, which matches each message against the subscription
// Index and queues one shared frame per recipient on its pool.Conn; every
// protocol byte comes from compat. Admission before the upgrade is
// internal/admission's, what the node reports about itself (STATS, metrics,
// health, readiness) is collected by an observe.Node, and requests that are
// not wsproxy's go to upstream.
//
// After the upgrade, client frames are read straight from the socket
// (internal/wsframe) so that an idle connection holds only its read goroutine's
// stack and a few hundred bytes of state.
package proxy
