// Command wsload measures WebSocket push servers on this machine: it opens N
// connections over loopback (spread over source addresses 127.0.0.2–20 and,
// past 19,000 connections, over worker processes), subscribes them with a
// filter mix, publishes trades through Redis Pub/Sub at a fixed rate with the
// send time embedded, and reports connections, connect rate, delivered
// messages per second, loss, latency percentiles and server memory, for each
// target in turn (by default the naive baseline hub, then wsproxy), with the
// ratios between them. See BENCHMARKS.md for the runs and their results.
//
//	go run ./tools/wsload -conns 19000 -rate 5 -duration 30s
//
// The targets wsproxy:off, wsproxy:per_message and wsproxy:shared_stream run
// wsproxy with that compression mode, the clients offering permessage-deflate;
// -feed demo publishes the demo market-data mix instead of trades only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"wsproxy/internal/rlimit"
	"wsproxy/tools/loadtest"

	"github.com/rs/zerolog"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

type options struct {
	conns, nodes, perProcess, payload, concurrency int
	compress                                       bool
	rate                                           float64
	duration, idle, drain                          time.Duration
	mix, targets, redisAddr, url, jsonOut, feed    string
	wsproxyCmd, wsproxyEnv, naiveCmd               string
	serverPIDs                                     string
	progress                                       bool
	repeat                                         int
}

func run(args []string) error {
	rlimit.RaiseOpenFiles(zerolog.Nop())
	fl := flag.NewFlagSet("wsload", flag.ContinueOnError)
	var o options
	worker := fl.Bool("worker", false, "internal: run as a worker process (config on stdin)")
	fl.IntVar(&o.conns, "conns", 1000, "connections per target (all nodes together)")
	fl.IntVar(&o.nodes, "nodes", 1, "server processes per target; connections are spread over them")
	fl.IntVar(&o.perProcess, "per-process", loadtest.DefaultPerProcess, "connections per load process; beyond it worker processes are started")
	fl.IntVar(&o.payload, "payload", 0, "pad each message's data to about this many bytes")
	fl.BoolVar(&o.compress, "compress", false, "offer permessage-deflate, as browsers do (the server decides; always on for wsproxy:MODE targets)")
	fl.StringVar(&o.feed, "feed", loadtest.FeedTrades, "what is published: trades, or demo (the demo source's mix of trades, tickers, depth and klines)")
	fl.IntVar(&o.concurrency, "concurrency", 256, "handshakes in flight per load process")
	fl.Float64Var(&o.rate, "rate", 5, "published messages per second")
	fl.DurationVar(&o.duration, "duration", 10*time.Second, "publishing phase")
	fl.DurationVar(&o.idle, "idle", 3*time.Second, "idle phase before publishing (idle memory is sampled at its end)")
	fl.DurationVar(&o.drain, "drain", 10*time.Second, "longest wait for in-flight messages after publishing")
	fl.StringVar(&o.mix, "mix", "all=1", "filter mix weights: all=W,exchange=W,symbol=W")
	fl.StringVar(&o.targets, "targets", "naive,wsproxy", "targets measured in turn: naive, wsproxy, wsproxy:off|per_message|shared_stream, external")
	fl.StringVar(&o.redisAddr, "redis", "", "Redis address to publish to; empty: start a private redis-server")
	fl.StringVar(&o.url, "url", "", "external target: comma-separated ws:// URLs")
	fl.StringVar(&o.serverPIDs, "server-pid", "", "external target: comma-separated server pids for RSS")
	fl.StringVar(&o.wsproxyCmd, "wsproxy-cmd", "", "wsproxy command ({redis} replaced; WSPROXY_LISTEN set); empty: build wsproxy and feed it from Redis Pub/Sub (sources.redis)")
	fl.StringVar(&o.wsproxyEnv, "wsproxy-env", "", "extra wsproxy environment, comma-separated K=V ({redis} replaced), e.g. WSPROXY_SOURCES_REDIS_ENABLED=true,WSPROXY_SOURCES_REDIS_ADDR={redis}")
	fl.StringVar(&o.naiveCmd, "naive-cmd", "", "baseline command ({addr}, {redis} replaced); empty: build tools/naivehub")
	fl.StringVar(&o.jsonOut, "json", "", "also write the JSON report to this file")
	fl.IntVar(&o.repeat, "repeat", 1, "rounds over the targets, alternating them; the table shows each target's median per metric")
	fl.BoolVar(&o.progress, "progress", true, "live progress line on stderr")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *worker {
		return loadtest.WorkerMain(os.Stdin, os.Stdout)
	}
	mix, err := parseMix(o.mix)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	tmp, err := os.MkdirTemp("", "wsload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	redisAddr := o.redisAddr
	if redisAddr == "" {
		r, err := loadtest.StartRedis(tmp)
		if err != nil {
			return err
		}
		defer r.Stop()
		redisAddr = r.Addr
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	var reports []loadtest.Report
	targets := strings.Split(o.targets, ",")
	var rounds []string
	for r := 0; r < max(1, o.repeat); r++ {
		rounds = append(rounds, targets...)
	}
	for _, name := range rounds {
		name = strings.TrimSpace(name)
		target, modeEnv, offer, err := compressionTarget(name)
		if err != nil {
			return err
		}
		cfg := loadtest.Config{
			Name: name, Conns: o.conns, PerProcess: o.perProcess, Mix: mix, Rate: o.rate, Duration: o.duration,
			Idle: o.idle, Drain: o.drain, Concurrency: o.concurrency, RedisAddr: redisAddr, PayloadBytes: o.payload, Compress: o.compress || offer,
			Feed:          o.feed,
			WorkerCommand: func() *exec.Cmd { return exec.Command(self, "-worker") },
		}
		if o.progress {
			cfg.Progress = os.Stderr
		}
		var servers []*loadtest.Server
		switch target {
		case "external":
			cfg.URLs = strings.Split(o.url, ",")
			for _, p := range strings.Split(o.serverPIDs, ",") {
				if pid, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
					cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
				}
			}
		case "naive", "wsproxy":
			argv, env, err := targetCommand(target, o, tmp)
			if err != nil {
				return err
			}
			for i := 0; i < o.nodes; i++ {
				addr, err := loadtest.FreeAddr()
				if err != nil {
					return err
				}
				subst := strings.NewReplacer("{addr}", addr, "{redis}", redisAddr)
				a := make([]string, len(argv))
				for j, s := range argv {
					a[j] = subst.Replace(s)
				}
				e := []string{"WSPROXY_LISTEN=" + addr}
				for _, kv := range append(env, modeEnv...) {
					e = append(e, subst.Replace(kv))
				}
				s, err := loadtest.StartServer(addr, e, a...)
				if err != nil {
					stopAll(servers)
					return err
				}
				servers = append(servers, s)
				cfg.URLs = append(cfg.URLs, "ws://"+addr+"/ws")
				cfg.ServerPIDs = append(cfg.ServerPIDs, s.PID())
			}
			time.Sleep(500 * time.Millisecond) // let the subscriber settle into PSUBSCRIBE
		default:
			return fmt.Errorf("unknown target %q", target)
		}
		rep, err := loadtest.Run(ctx, cfg)
		stopAll(servers)
		if err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		reports = append(reports, rep)
	}
	printTable(os.Stdout, o, medians(targets, reports))
	b, _ := json.MarshalIndent(reports, "", "  ")
	fmt.Println(string(b))
	if o.jsonOut != "" {
		return os.WriteFile(o.jsonOut, b, 0o644)
	}
	return nil
}

func stopAll(ss []*loadtest.Server) {
	for _, s := range ss {
		s.Stop()
	}
}

// targetCommand returns the argv and environment of a target, building it
// from this module when no command was given.
func targetCommand(target string, o options, tmp string) ([]string, []string, error) {
	build := func(pkg string) (string, error) {
		out := filepath.Join(tmp, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("build %s: %w", pkg, err)
		}
		return out, nil
	}
	switch target {
	case "naive":
		if o.naiveCmd != "" {
			return strings.Fields(o.naiveCmd), nil, nil
		}
		bin, err := build("wsproxy/tools/naivehub")
		return []string{bin, "-listen", "{addr}", "-redis", "{redis}"}, nil, err
	default:
		env := []string{"WSPROXY_MAX_CONNECTIONS=" + strconv.Itoa(o.conns+1000), "WSPROXY_LOG_LEVEL=warn",
			"WSPROXY_SOURCES_DEMO_ENABLED=false"}
		if o.wsproxyEnv != "" {
			env = append(env, strings.Split(o.wsproxyEnv, ",")...)
		}
		if o.wsproxyCmd != "" {
			return strings.Fields(o.wsproxyCmd), env, nil
		}
		env = append(env, "WSPROXY_SOURCES_REDIS_ENABLED=true", "WSPROXY_SOURCES_REDIS_ADDR={redis}")
		bin, err := build("wsproxy")
		return []string{bin, "-config="}, env, err
	}
}

func parseMix(s string) (loadtest.Mix, error) {
	var m loadtest.Mix
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return m, fmt.Errorf("-mix %q: want all=W,exchange=W,symbol=W", s)
		}
		switch k {
		case "all":
			m.All = n
		case "exchange":
			m.Exchange = n
		case "symbol":
			m.Symbol = n
		default:
			return m, fmt.Errorf("-mix: unknown class %q", k)
		}
	}
	if m.All+m.Exchange+m.Symbol == 0 {
		return m, errors.New("-mix: all weights are zero")
	}
	return m, nil
}

func printTable(w io.Writer, o options, reps []loadtest.Report) {
	fmt.Fprintf(w, "wsload %s: %d conns, %d node(s), mix %s, feed %s, %.0f msg/s for %s\n",
		time.Now().UTC().Format(time.RFC3339), o.conns, o.nodes, o.mix, o.feed, o.rate, o.duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(r loadtest.Report) float64, format string, lowerBetter bool) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, r := range reps {
			fmt.Fprintf(tw, format+"\t", f(r))
		}
		for _, r := range reps[min(1, len(reps)):] {
			if f(reps[0]) != 0 {
				fmt.Fprintf(tw, "%.2fx\t", f(r)/f(reps[0]))
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "\t")
	for _, r := range reps {
		fmt.Fprintf(tw, "%s\t", r.Name)
	}
	for _, r := range reps[min(1, len(reps)):] {
		fmt.Fprintf(tw, "%s/%s\t", r.Name, reps[0].Name)
	}
	fmt.Fprintln(tw)
	row("established", func(r loadtest.Report) float64 { return float64(r.Established) }, "%.0f", false)
	row("failed", func(r loadtest.Report) float64 { return float64(r.Failed) }, "%.0f", true)
	row("connect/s", func(r loadtest.Report) float64 { return r.ConnectRate }, "%.0f", false)
	row("published", func(r loadtest.Report) float64 { return float64(r.Published) }, "%.0f", false)
	row("expected", func(r loadtest.Report) float64 { return float64(r.Expected) }, "%.0f", false)
	row("received", func(r loadtest.Report) float64 { return float64(r.Received) }, "%.0f", false)
	row("loss %", func(r loadtest.Report) float64 { return r.LossPct }, "%.3f", true)
	row("delivered msg/s", func(r loadtest.Report) float64 { return r.DeliveredPerSec }, "%.0f", false)
	row("p50 ms", func(r loadtest.Report) float64 { return r.Latency.P50 }, "%.2f", true)
	row("p95 ms", func(r loadtest.Report) float64 { return r.Latency.P95 }, "%.2f", true)
	row("p99 ms", func(r loadtest.Report) float64 { return r.Latency.P99 }, "%.2f", true)
	row("max ms", func(r loadtest.Report) float64 { return r.Latency.Max }, "%.2f", true)
	row("RSS base MB", func(r loadtest.Report) float64 { return r.RSSBaseMB }, "%.1f", true)
	row("RSS idle MB", func(r loadtest.Report) float64 { return r.RSSIdleMB }, "%.1f", true)
	row("RSS load MB", func(r loadtest.Report) float64 { return r.RSSLoadMB }, "%.1f", true)
	row("KB/conn (idle-base)", func(r loadtest.Report) float64 { return r.KBPerConn }, "%.2f", true)
	row("KB/conn (idle total)", func(r loadtest.Report) float64 { return r.KBPerConnTotal }, "%.2f", true)
	row("compressing conns", func(r loadtest.Report) float64 { return float64(r.Compressed) }, "%.0f", false)
	row("wire B/msg", func(r loadtest.Report) float64 { return r.WireBytesPerMsg }, "%.1f", true)
	row("server CPU µs/msg", func(r loadtest.Report) float64 { return r.ServerCPUPerMsgUS }, "%.3f", true)
	tw.Flush()
	for _, r := range reps {
		if len(r.NodeP99) > 0 {
			fmt.Fprintf(w, "%s per-node p99 ms: %v\n", r.Name, r.NodeP99)
		}
		if len(r.Errors) > 0 {
			fmt.Fprintf(w, "%s connect errors (first): %v\n", r.Name, r.Errors)
		}
	}
}

// medians folds repeated runs into one report per target holding the median
// of each figure (each figure separately), so that one run disturbed by
// other load on the machine does not decide a ratio.
func medians(targets []string, reps []loadtest.Report) []loadtest.Report {
	var out []loadtest.Report
	for _, t := range targets {
		t = strings.TrimSpace(t)
		var rs []loadtest.Report
		for _, r := range reps {
			if r.Name == t {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		med := func(f func(r *loadtest.Report) *float64) {
			v := make([]float64, len(rs))
			for i := range rs {
				v[i] = *f(&rs[i])
			}
			sort.Float64s(v)
			*f(&rs[0]) = v[len(v)/2]
		}
		for _, f := range []func(r *loadtest.Report) *float64{
			func(r *loadtest.Report) *float64 { return &r.ConnectRate },
			func(r *loadtest.Report) *float64 { return &r.LossPct },
			func(r *loadtest.Report) *float64 { return &r.DeliveredPerSec },
			func(r *loadtest.Report) *float64 { return &r.Latency.P50 },
			func(r *loadtest.Report) *float64 { return &r.Latency.P95 },
			func(r *loadtest.Report) *float64 { return &r.Latency.P99 },
			func(r *loadtest.Report) *float64 { return &r.Latency.Max },
			func(r *loadtest.Report) *float64 { return &r.RSSBaseMB },
			func(r *loadtest.Report) *float64 { return &r.RSSIdleMB },
			func(r *loadtest.Report) *float64 { return &r.RSSLoadMB },
			func(r *loadtest.Report) *float64 { return &r.KBPerConn },
			func(r *loadtest.Report) *float64 { return &r.KBPerConnTotal },
			func(r *loadtest.Report) *float64 { return &r.WireBytesPerMsg },
			func(r *loadtest.Report) *float64 { return &r.ServerCPUPerMsgUS },
		} {
			med(f)
		}
		if len(rs) > 1 {
			rs[0].Name = fmt.Sprintf("%s(med%d)", t, len(rs))
		}
		out = append(out, rs[0])
	}
	return out
}
