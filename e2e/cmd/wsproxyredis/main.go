// Command wsproxyredis runs the real wsproxy server (package proxy, with the
// shipped defaults and WSPROXY_* environment overrides) fed by a minimal Redis
// Pub/Sub reader (PSUBSCRIBE market-data-* → Dispatcher). It exists so that
// e2e/cmd/wsload can drive wsproxy and the naive baseline through the same
// Redis channels; once the production Redis Pub/Sub source is configured in
// the wsproxy binary, wsload can start that binary instead (-wsproxy-cmd).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"wsproxy/admin"
	"wsproxy/dataflow"
	"wsproxy/proxy"
)

func main() {
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	pattern := flag.String("pattern", "market-data-*", "Pub/Sub pattern")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (profiling runs)")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }()
	}
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	cfg, err := proxy.LoadConfig("")
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsproxyredis:", err)
		os.Exit(1)
	}
	log := proxy.NewLogger(cfg.Log, os.Stderr)
	srv, err := proxy.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsproxyredis:", err)
		os.Exit(1)
	}
	admin.New(srv).Register(srv)
	if err := srv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "wsproxyredis:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	ps := rdb.PSubscribe(ctx, *pattern)
	if _, err := ps.Receive(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "wsproxyredis: psubscribe:", err)
		os.Exit(1)
	}
	sink := srv.Dispatcher()
	go func() {
		for m := range ps.Channel(redis.WithChannelSize(4096)) {
			md, err := dataflow.Decode([]byte(m.Payload))
			if err != nil {
				continue
			}
			if md.ReceivedAt == 0 {
				md.ReceivedAt = time.Now().UnixMilli()
			}
			sink.Deliver(&md)
		}
	}()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	cancel()
	_ = ps.Close()
	sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer scancel()
	_ = srv.Shutdown(sctx)
}
