package proxy_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"wsproxy/config"
	"wsproxy/proxy"
)

func TestDemoPage(t *testing.T) {
	off := false
	tests := []struct {
		name   string
		on     *bool
		method string
		status int
	}{
		{"default on", nil, fasthttp.MethodGet, fasthttp.StatusOK},
		{"head", nil, fasthttp.MethodHead, fasthttp.StatusOK},
		{"post refused", nil, fasthttp.MethodPost, fasthttp.StatusMethodNotAllowed},
		{"switched off", &off, fasthttp.MethodGet, fasthttp.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := proxy.New(config.Config{DemoPage: tc.on}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			proxy.RegisterDemoPage(srv)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv.Serve(ln)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				_ = srv.Shutdown(ctx)
			})
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + ln.Addr().String() + "/")
			req.Header.SetMethod(tc.method)
			if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode(), tc.status)
			}
			if tc.status == fasthttp.StatusOK && tc.method == fasthttp.MethodGet {
				body := resp.Body()
				for _, want := range []string{"<!doctype html>", "new WebSocket(", "message.payload || message", "type: 'ping', timestamp: new Date().toISOString()"} {
					if !bytes.Contains(body, []byte(want)) {
						t.Fatalf("page lacks %q", want)
					}
				}
				if bytes.Contains(body, []byte("'subscribe'")) || bytes.Contains(body, []byte(`"subscribe"`)) {
					t.Fatal("the page must never subscribe, as the deployed frontend")
				}
				if ct := string(resp.Header.ContentType()); ct != "text/html; charset=utf-8" {
					t.Fatalf("content type %q", ct)
				}
			}
		})
	}
}
