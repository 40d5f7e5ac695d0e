// Command wsproxy bridges the market-data pipeline to browsers over
// WebSocket. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"

	"wsproxy/admin"
	"wsproxy/dataflow"
	"wsproxy/proxy"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wsproxy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("wsproxy", flag.ContinueOnError)
	cfgPath := fl.String("config", "config.yaml", "path to the YAML configuration (\"\" for defaults only)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	path := *cfgPath
	if path == "config.yaml" {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			path = "" // defaults and environment only
		}
	}
	cfg, err := proxy.LoadConfig(path)
	if err != nil {
		return err
	}
	log := proxy.NewLogger(cfg.Log, os.Stderr)
	raiseOpenFiles(log)

	var sources []dataflow.Source
	if cfg.Sources.Demo.Enabled {
		sources = append(sources, dataflow.NewDemo(cfg.Sources.Demo))
	}
	if cfg.Sources.RedisSharded.Enabled {
		src, err := dataflow.NewRedisSharded(cfg.Sources.RedisSharded)
		if err != nil {
			return err
		}
		sources = append(sources, src)
	}
	srv, err := proxy.New(cfg, log, sources...)
	if err != nil {
		return err
	}
	admin.New(srv).Register(srv)
	if err := srv.Start(); err != nil {
		return err
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	log.Info().Str("signal", s.String()).Dur("grace", cfg.ShutdownTimeout).Msg("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("shutdown incomplete: remaining connections closed hard")
	}
	log.Info().Msg("stopped")
	return nil
}
