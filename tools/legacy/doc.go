// Package legacy is a small reference server that behaves as the deployed
// legacy Exchange Collector WebSocket server (A in ../shared/legacy/) did,
// so that wsproxy can be compared against it in tests and in parallel-run
// rehearsals (`wsproxy legacy`, `wsproxy compare`). Its replay test
// reproduces A's recorded transcripts with no difference.
//
// What it reproduces:
//   - every data message is broadcast to every registered client, whatever
//     the client subscribed to, in A's envelope
//     {"type","payload":{type,exchange,symbol,data,timestamp},"timestamp"},
//     encoded once per message with one send timestamp;
//   - one WebSocket frame per message (no batch envelope, no coalescing);
//   - A's welcome (connectionId ws_<ms>_<n>, serverTime, timestamp), pong for
//     ping, the channel subscribe/unsubscribe replies (any channel name,
//     delivery unchanged), A's getStats shape, "Invalid message format" for
//     frames that are not JSON, and silence for everything else, the filter
//     form of subscribe and unsubscribe included;
//   - binary frames read as text, client frames up to 100 MiB;
//   - protocol pings every 30 s, and a client silent for 60 s dropped from
//     the registry without a close frame;
//   - on shutdown, queued frames first, then close 1001 "Server shutting
//     down".
//
// It is fed from the same dataflow.Source values as wsproxy, so one
// configuration drives both. Beyond A, it bounds each client's queue and
// counts overflow.
//
// Concurrency: a Server is safe for concurrent use. Each client has one
// reader goroutine and one writer goroutine; only the writer writes data
// frames (pings and close frames use WriteControl, which may run
// concurrently).
package legacy
