// Package admin serves the operator API of PROTOCOL.md ("Admin API"): JSON
// snapshots read from the other packages through small interfaces. It never
// reaches into their internals.
package admin
