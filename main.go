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
	"time"

	"github.com/rs/zerolog"

	"wsproxy/admin"
	"wsproxy/cluster"
	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/dataflow/sources"
	"wsproxy/internal/pprof"
	"wsproxy/internal/rlimit"
	"wsproxy/observe"
	"wsproxy/proxy"
)

func main() {
	smallStacks()
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
	log := observe.NewLogger(cfg.Log, os.Stderr)
	rlimit.RaiseOpenFiles(log)
	pprof.Start(log)

	n, err := build(cfg, log)
	if err != nil {
		return err
	}
	if err := n.run(); err != nil {
		return err
	}
	s := waitForSignal()
	log.Info().Str("signal", s.String()).Dur("grace", cfg.ShutdownTimeout).Msg("shutting down")
	n.shutdown(cfg.ShutdownTimeout)
	log.Info().Msg("stopped")
	return nil
}

// node is one serving wsproxy process: the server, its admin API and its
// membership of the cluster.
type node struct {
	log         zerolog.Logger
	srv         *proxy.Server
	api         *admin.API
	cluster     *cluster.Registry
	adminListen string
	stopCluster context.CancelFunc
	clusterDone chan struct{}
}

// build wires the sources, the server, the admin API and the cluster
// registry of cfg; nothing listens yet.
func build(cfg config.Config, log zerolog.Logger) (*node, error) {
	srcs, err := sources.Build(cfg.Sources)
	if err != nil {
		return nil, err
	}
	srv, err := proxy.New(cfg, log, srcs.All...)
	if err != nil {
		return nil, err
	}
	if srcs.Ingest != nil {
		srv.Handle(dataflow.IngestPath, srcs.Ingest.Handler())
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
	}
	return &node{log: log, srv: srv, api: api, cluster: cluster, adminListen: cfg.Admin.Listen}, nil
}

// run starts the admin listener (if separate), the server and the cluster
// registry.
func (n *node) run() error {
	if n.adminListen != "" {
		if _, err := n.api.Start(n.adminListen); err != nil {
			return err
		}
	}
	if err := n.srv.Start(); err != nil {
		_ = n.api.Shutdown(context.Background())
		return err
	}
	cctx, stopCluster := context.WithCancel(context.Background())
	n.stopCluster, n.clusterDone = stopCluster, make(chan struct{})
	go func() {
		defer close(n.clusterDone)
		if n.cluster != nil {
			n.cluster.Run(cctx)
		}
	}()
	return nil
}

// waitForSignal returns the first SIGINT or SIGTERM.
func waitForSignal() os.Signal {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	return <-sig
}

// shutdown leaves the cluster, then closes the connections within grace
// and stops the admin API.
func (n *node) shutdown(grace time.Duration) {
	n.stopCluster() // leave the registry first, so that totals stop counting this node
	<-n.clusterDone
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.log.Warn().Err(err).Msg("shutdown incomplete: remaining connections closed hard")
	}
	if err := n.api.Shutdown(ctx); err != nil {
		n.log.Warn().Err(err).Msg("admin listener shutdown incomplete")
	}
}
