package admin

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Start listens on addr (admin.listen) and serves the admin endpoints there
// in the background until Shutdown.
func (a *API) Start(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", addr, err)
	}
	a.Serve(ln)
	return ln.Addr(), nil
}

// Serve serves the admin endpoints on ln in the background until Shutdown.
func (a *API) Serve(ln net.Listener) {
	a.srv = &fasthttp.Server{
		Handler:            a.Handler(),
		Name:               "wsproxy-admin",
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       30 * time.Second,
		IdleTimeout:        60 * time.Second,
		MaxRequestBodySize: 1 << 20,
		CloseOnShutdown:    true,
	}
	srv := a.srv
	go func() {
		if err := srv.Serve(ln); err != nil {
			a.log.Error().Err(err).Msg("admin server stopped")
		}
	}()
	a.log.Info().Str("addr", ln.Addr().String()).Msg("admin listening")
}

// Shutdown stops the listener of Start or Serve, if any.
func (a *API) Shutdown(ctx context.Context) error {
	if a.srv == nil {
		return nil
	}
	if err := a.srv.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}
