// Command wsproxy bridges the market-data pipeline to browsers over
// WebSocket. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"wsproxy/admin"
	"wsproxy/cluster"
	"wsproxy/proxy"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wsproxy:", err)
		os.Exit(exitCode(err))
	}
}

func run(args []string) error {
	if cmd, ok := subcommand(args); ok {
		return cmd(args[1:])
	}
	fl := flag.NewFlagSet("wsproxy", flag.ContinueOnError)
	cfgPath := fl.String("config", "config.yaml", "path to the YAML configuration (\"\" for defaults only)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := proxy.NewLogger(cfg.Log, os.Stderr)
	raiseOpenFiles(log)
	startPprof(log)

	sources, err := proxy.BuildSources(cfg.Sources)
	if err != nil {
		return err
	}
	srv, err := proxy.New(cfg, log, sources.All...)
	if err != nil {
		return err
	}
	if sources.Ingest != nil {
		srv.Handle(proxy.IngestPath, sources.Ingest.Handler())
	}
	api := admin.New(srv, cfg.Admin, log)
	cluster := cluster.New(cfg.Cluster, srv.ClusterSample, srv.Logger())
	if cluster != nil {
		api.SetCluster(cluster)
	}
	proxy.RegisterDemoPage(srv)
	if cfg.Admin.Listen == "" {
		api.Register(srv)
	} else {
		api.RegisterLegacy(srv)
		if _, err := api.Start(cfg.Admin.Listen); err != nil {
			return err
		}
	}
	if err := srv.Start(); err != nil {
		_ = api.Shutdown(context.Background())
		return err
	}
	cctx, stopCluster := context.WithCancel(context.Background())
	clusterDone := make(chan struct{})
	go func() {
		defer close(clusterDone)
		if cluster != nil {
			cluster.Run(cctx)
		}
	}()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	log.Info().Str("signal", s.String()).Dur("grace", cfg.ShutdownTimeout).Msg("shutting down")
	stopCluster() // leave the registry first, so that totals stop counting this node
	<-clusterDone
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("shutdown incomplete: remaining connections closed hard")
	}
	if err := api.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("admin listener shutdown incomplete")
	}
	log.Info().Msg("stopped")
	return nil
}
