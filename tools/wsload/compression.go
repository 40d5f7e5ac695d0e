package main

import (
	"fmt"
	"strings"
)

// compressionModes are the suffixes of the wsproxy:MODE targets.
var compressionModes = []string{"off", "per_message", "shared_stream"}

// compressionTarget splits a target "wsproxy:MODE" into "wsproxy" and the
// environment selecting the compression mode; the load clients of such a
// target offer permessage-deflate, as browsers do, so that "off" is the
// server's choice, not the client's. Other targets are returned unchanged.
func compressionTarget(target string) (base string, env []string, offer bool, err error) {
	base, mode, ok := strings.Cut(target, ":")
	if !ok {
		return target, nil, false, nil
	}
	if base != "wsproxy" {
		return "", nil, false, fmt.Errorf("target %q: only wsproxy takes a compression mode", target)
	}
	switch mode {
	case "off":
		return base, []string{"WSPROXY_COMPRESSION_ENABLED=false"}, true, nil
	case "per_message", "shared_stream":
		return base, []string{"WSPROXY_COMPRESSION_ENABLED=true", "WSPROXY_COMPRESSION_MODE=" + mode}, true, nil
	}
	return "", nil, false, fmt.Errorf("target %q: compression mode must be one of %s", target, strings.Join(compressionModes, ", "))
}
