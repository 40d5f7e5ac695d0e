// Package proxy runs wsproxy: the fasthttp server, the WebSocket upgrade,
// one read loop per connection, heartbeats, lifecycle and graceful shutdown.
// It wires the other packages together: sources (dataflow) feed the
// Dispatcher, which matches each message against the subscription Index and
// queues one shared frame per recipient on its pool.Conn. Every protocol byte
// comes from compat.
package proxy
