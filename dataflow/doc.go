// Package dataflow is the input side of wsproxy: the normalised MarketData
// message of the collector pipeline, the OutputChannel interface the pipeline
// writes to, and the sources that feed the proxy: in-process, demo feed,
// Redis Pub/Sub, Redis Streams and HTTP ingest. The Redis sources reconnect
// with a capped, jittered exponential Backoff.
//
// Every message is decoded and validated once, here, and stamped with the time
// it entered the proxy. Nothing in this package knows about connections or
// frames: a Source hands validated messages to a Sink and never blocks on it.
package dataflow
