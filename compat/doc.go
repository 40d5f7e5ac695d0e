// Package compat owns every byte of the WebSocket wire protocol that wsproxy
// speaks with browsers (shared/PROTOCOL.md). Existing clients were written
// against the legacy Node.js server and must keep working unchanged, so the
// shapes of client and server messages live here and nowhere else: other
// packages decide what to say, compat decides how it looks on the wire.
//
// Client frames are parsed by [DecodeClient], which checks structure and JSON
// types only; semantic checks (known data types, limits, lengths) belong to
// the subscription layer, which reports them with the same [Error] codes.
//
// Server messages are produced by append-style encoders (AppendWelcome,
// AppendData, ...). They append to a caller-owned buffer and allocate nothing
// beyond growing it, so the data path can encode a message once into a pooled
// buffer and share the bytes with every recipient. Output is compact JSON with
// a fixed key order and no trailing newline; tests pin it byte for byte.
//
// The package holds no state: every function is safe for concurrent use, and
// the encoders only write to the dst slice they are given.
package compat
