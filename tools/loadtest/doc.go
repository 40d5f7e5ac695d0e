// Package loadtest is the engine of the wsload tool (tools/wsload) and of
// the CI load smoke test: it opens many real WebSocket connections over
// loopback, spread over source addresses 127.0.0.2–127.0.0.20 and, past the
// per-process file limit, over worker processes; subscribes them with a
// filter mix; publishes market data at a fixed rate through Redis Pub/Sub
// with the send time embedded in each message; and measures what arrives:
// connections established and failed, connect rate, delivered messages per
// second, loss, latency percentiles and the server's resident memory.
//
// The client side is deliberately lean (raw frames over a buffered reader, no
// per-message allocation) so that, on one machine, the tool costs far less
// than the servers it measures.
package loadtest
