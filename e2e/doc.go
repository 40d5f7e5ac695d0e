// Package e2e holds end-to-end tests: they build and run the real wsproxy
// binary against real Redis, real WebSocket clients and a real browser. It is
// never imported by production code.
package e2e
