package compat

import "bytes"

var timestampKey = []byte(`,"timestamp":`)

// Restamp appends frame, a server frame encoded by this package (its
// top-level timestamp comes last), with that timestamp replaced by ts. A
// large reply encoded once can so be sent many times, each with its own
// send time, for the cost of a copy. A frame not ending in a timestamp is
// appended unchanged.
func Restamp(dst, frame []byte, ts int64) []byte {
	i := bytes.LastIndex(frame, timestampKey)
	if i < 0 || len(frame) == 0 || frame[len(frame)-1] != '}' {
		return append(dst, frame...)
	}
	return appendTimestamp(append(dst, frame[:i]...), ts)
}
