// Package compare is the parallel-run parity checker behind `wsproxy
// compare`. It connects one client to the legacy server and one to wsproxy
// with the same subscription, records every data message each receives, and
// reports how far the two streams agree: matched messages, messages missing
// on either side, messages whose payload differs, per-type counts and the
// distribution of the arrival skew (proxy arrival minus legacy arrival).
//
// Matching. A data message is identified by (payload.type, exchange, symbol,
// payload.timestamp); several messages may share that key (two trades in one
// millisecond), so each key holds a small multiset. A message from one side
// matches a pending message of the other side with the same key and the same
// canonical payload (JSON with sorted keys, numbers as written). When the run
// ends, leftover messages that share a key are paired as "differing" (same
// message, different payload, with the differing fields reported); the rest
// are "missing" on the side that never received them. The outer timestamp is
// not compared: it is the send time and differs by design.
//
// Window. Messages published before both clients were ready (connected, and
// subscribed when a subscription is asked for) cannot be expected on both
// sides, so only messages whose first arrival (on either side) falls inside
// the measurement window count: the window opens Config.WarmUp after both
// clients are ready and closes when the duration or message count is reached.
// After that the tool keeps reading for up to Config.Grace so that late
// arrivals of in-window messages still match, and stops early once nothing in
// the window is pending.
//
// Filters. The legacy server broadcast every message whatever the client
// subscribed to, so with a filter subscription the legacy stream is filtered
// here with wsproxy's own matching rules; a message outside the filter
// received from wsproxy is a violation and counts against parity.
//
// The Matcher holds the pure matching logic and is safe for concurrent use;
// Run adds the two WebSocket clients, the window and the progress line.
package compare
