// Package proxy runs wsproxy: the fasthttp server, the WebSocket upgrade,
// one read loop per connection, heartbeats, lifecycle and graceful shutdown.
// It wires the other packages together: sources (dataflow) feed the
// Dispatcher, which matches each message against the subscription Index and
// queues one shared frame per recipient on its pool.Conn. Every protocol byte
// comes from compat.
//
// After the upgrade, client frames are read straight from the socket
// (wsread.go) so that an idle connection holds only its read goroutine's
// stack and a few hundred bytes of state; a message for a large recipient
// set is fanned out in parallel chunks on a worker pool (fanout.go).
package proxy
