// Package legacy is a small reference server that behaves as the legacy
// Node.js Exchange Collector WebSocket server did (shared/PROTOCOL.md), so
// that wsproxy can be compared against it in tests and in parallel-run
// rehearsals (`wsproxy legacy`, `wsproxy compare`).
//
// What it reproduces, and nothing more:
//   - every data message is broadcast to every connected client, whatever the
//     client subscribed to, in the legacy envelope
//     {"type","payload":{type,exchange,symbol,data,timestamp},"timestamp"};
//   - the outer timestamp is stamped per send (per client), as the legacy
//     server serialised each message once for every socket;
//   - one WebSocket frame per message (no batch envelope, no coalescing);
//   - a welcome frame after the upgrade, pong for ping, the legacy channel
//     subscribe/unsubscribe replies, and an acknowledgement for the filter
//     form (which the legacy server accepted but did not apply).
//
// It is fed from the same dataflow.Source values as wsproxy, so one
// configuration drives both. It is deliberately simple: no heartbeats, no
// shedding beyond a bounded per-client queue whose overflow is counted.
//
// Concurrency: a Server is safe for concurrent use. Each client has one
// reader goroutine and one writer goroutine; only the writer writes to the
// socket.
package legacy
