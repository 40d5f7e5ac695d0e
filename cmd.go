package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/dataflow/sources"
	"wsproxy/observe"
	"wsproxy/tools/compare"
	"wsproxy/tools/legacy"
)

// Exit codes of the subcommands. Serving wsproxy exits 1 on any error.
const (
	exitFail  = 1 // compare: parity below --min-parity, or a connection lost
	exitUsage = 2 // bad flags, or the comparison could not start
)

// exitError carries the process exit code for an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode maps an error from run to the process exit code.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// subcommand returns the handler of `wsproxy <name> ...`; without a known
// name, run serves wsproxy itself.
func subcommand(args []string) (func(args []string) error, bool) {
	if len(args) == 0 {
		return nil, false
	}
	switch args[0] {
	case "compare":
		return runCompare, true
	case "legacy":
		return runLegacy, true
	case "check-config":
		return runCheckConfig, true
	case "version":
		return runVersion, true
	case "healthcheck":
		return runHealthcheck, true
	case "drain":
		return runDrain, true
	}
	return nil, false
}

// loadConfig loads path; the default path may be absent (defaults and
// environment only).
func loadConfig(path string) (config.Config, error) {
	if path == "config.yaml" {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			path = ""
		}
	}
	return config.Load(path)
}

const compareUsage = `usage: wsproxy compare --legacy ws://legacy:8080/ws --proxy ws://wsproxy:8080/ws [flags]

Connects one client to each endpoint with the same subscription, matches
their data messages by (type, exchange, symbol, payload.timestamp, data) and
reports parity. Exit status: 0 parity >= --min-parity, 1 below it (or a
connection was lost), 2 the comparison could not run.

`

func runCompare(args []string) error {
	fl := flag.NewFlagSet("wsproxy compare", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), compareUsage)
		fl.PrintDefaults()
	}
	legacyURL := fl.String("legacy", "", "legacy server WebSocket URL (required)")
	proxyURL := fl.String("proxy", "", "wsproxy WebSocket URL (required)")
	subscribe := fl.String("subscribe", "none", `what both clients subscribe to: none, channel (marketData), or a filter object such as '{"exchange":["binance"],"dataTypes":["trade"]}'`)
	duration := fl.Duration("duration", 0, "length of the measurement window (0: 60s, or until --count)")
	count := fl.Int("count", 0, "close the window after this many data messages on either side (0: no limit)")
	minParity := fl.Float64("min-parity", 100, "fail below this parity in percent (0: never fail on parity)")
	warmUp := fl.Duration("warmup", time.Second, "wait after both clients are ready before counting")
	grace := fl.Duration("grace", 3*time.Second, "keep reading this long after the window for late arrivals")
	maxDiffs := fl.Int("max-diffs", 5, "differing and missing examples to report")
	asJSON := fl.Bool("json", false, "print the report as JSON")
	quiet := fl.Bool("quiet", false, "no progress line on stderr")
	proxyCompress := fl.Bool("proxy-compress", false, "offer permessage-deflate to --proxy (as browsers do); fail if not agreed")
	if err := fl.Parse(args); err != nil {
		return &exitError{exitUsage, err}
	}
	if fl.NArg() > 0 {
		return &exitError{exitUsage, fmt.Errorf("compare: unexpected arguments %q", fl.Args())}
	}
	sub, err := compare.ParseSubscription(*subscribe)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	cfg := compare.Config{
		LegacyURL: *legacyURL, ProxyURL: *proxyURL, ProxyCompression: *proxyCompress, Subscribe: sub,
		Duration: *duration, Count: *count, MinParity: *minParity,
		WarmUp: *warmUp, Grace: *grace, MaxDiffs: *maxDiffs,
	}
	if cfg.MinParity == 0 {
		cfg.MinParity = -1 // compare.Config reads 0 as "100"
	}
	if cfg.WarmUp == 0 {
		cfg.WarmUp = -1
	}
	if !*quiet {
		cfg.Progress = os.Stderr
		cfg.ProgressCR = isatty.IsTerminal(os.Stderr.Fd())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r, err := compare.Run(ctx, cfg)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if err := writeReport(os.Stdout, r, *asJSON); err != nil {
		return &exitError{exitUsage, err}
	}
	if !r.Pass {
		return &exitError{exitFail, fmt.Errorf("compare: parity %.3f%% below %g%% or the run failed", r.Parity, *minParity)}
	}
	return nil
}

func writeReport(w io.Writer, r *compare.Report, asJSON bool) error {
	if !asJSON {
		return r.WriteText(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// runLegacy serves the legacy-behaviour reference (tools/legacy) fed by
// the sources of the configuration, until SIGINT or SIGTERM.
func runLegacy(args []string) error {
	fl := flag.NewFlagSet("wsproxy legacy", flag.ContinueOnError)
	cfgPath := fl.String("config", "config.yaml", "configuration whose sources and log sections are used")
	listen := fl.String("listen", "", "address to serve /ws on (\"\": the configuration's listen)")
	clientQueue := fl.Int("client-queue", 0, "frames queued per client before dropping (0: 4096)")
	if err := fl.Parse(args); err != nil {
		return &exitError{exitUsage, err}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := observe.NewLogger(cfg.Log, os.Stderr)
	lcfg := legacy.Config{Listen: *listen, ClientQueue: *clientQueue}
	if lcfg.Listen == "" {
		lcfg.Listen = cfg.Listen
	}
	srcs, err := sources.Build(cfg.Sources)
	if err != nil {
		return err
	}
	srv, err := legacy.New(lcfg, log, srcs.All...)
	if err != nil {
		return err
	}
	if srcs.Ingest != nil {
		srv.Handle(dataflow.IngestPath, srcs.Ingest.Handler())
	}
	if err := srv.Start(); err != nil {
		return err
	}
	s := waitForSignal()
	log.Info().Str("signal", s.String()).Msg("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return srv.Shutdown(ctx)
}
