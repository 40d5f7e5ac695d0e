// Package pprof serves Go's profiling endpoints when WSPROXY_DEBUG_PPROF
// names an address.
package pprof

import (
	"net/http"
	"net/http/pprof"
	"os"

	"github.com/rs/zerolog"
)

// Env names the environment variable that, when set to a listen
// address (e.g. 127.0.0.1:6060), serves Go's profiling endpoints
// (/debug/pprof/) there. Unset (the default): nothing is served. It is meant
// for load measurements on a development machine, never for production.
const Env = "WSPROXY_DEBUG_PPROF"

// Start serves the endpoints on the address in Env, if any, in the
// background; a listener error is logged.
func Start(log zerolog.Logger) {
	addr := os.Getenv(Env)
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Error().Err(err).Str("addr", addr).Msg("pprof listener")
		}
	}()
}
