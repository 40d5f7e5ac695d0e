// Command wsload measures WebSocket push servers on this machine: it opens N
// connections over loopback (spread over source addresses 127.0.0.2–20 and,
// past 19,000 connections, over worker processes), subscribes them with a
// filter mix, publishes trades through Redis Pub/Sub at a fixed rate with the
// send time embedded, and reports connections, connect rate, delivered
// messages per second, loss, latency percentiles and server memory, for each
// target in turn (by default the floor server, the naive baseline hub, then
// wsproxy; rounds alternate them), with every figure also as a ratio to the
// floor measured in the same round, and the box's load average around each
// round. See BENCHMARKS.md for the runs and their results.
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
	"math"
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
	wsproxyCmd, wsproxyEnv, naiveCmd, floorCmd     string
	wsproxy2Cmd, scale                             string
	cpuQuota                                       float64
	cpuPeriod                                      time.Duration
	serverPIDs                                     string
	progress                                       bool
	repeat                                         int
	inflateEvery                                   int
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
	fl.IntVar(&o.inflateEvery, "inflate-every", 0, "only every Nth connection decodes frames and records latency; the others count data frames from their headers (loss is counted on all); 0 or 1: all decode")
	fl.StringVar(&o.feed, "feed", loadtest.FeedTrades, "what is published: trades, or demo (the demo source's mix of trades, tickers, depth and klines)")
	fl.IntVar(&o.concurrency, "concurrency", 256, "handshakes in flight per load process")
	fl.Float64Var(&o.rate, "rate", 5, "published messages per second")
	fl.DurationVar(&o.duration, "duration", 10*time.Second, "publishing phase")
	fl.DurationVar(&o.idle, "idle", 3*time.Second, "idle phase before publishing (idle memory is sampled at its end)")
	fl.DurationVar(&o.drain, "drain", 10*time.Second, "longest wait for in-flight messages after publishing")
	fl.StringVar(&o.mix, "mix", "all=1", "filter mix weights: all=W,exchange=W,symbol=W")
	fl.StringVar(&o.targets, "targets", "floor,naive,wsproxy", "targets measured in turn: floor, naive, wsproxy, wsproxy:off|per_message|shared_stream, wsproxy2, external (every figure is also reported as a ratio to floor's in the same round)")
	fl.StringVar(&o.redisAddr, "redis", "", "Redis address to publish to; empty: start a private redis-server")
	fl.StringVar(&o.url, "url", "", "external target: comma-separated ws:// URLs")
	fl.StringVar(&o.serverPIDs, "server-pid", "", "external target: comma-separated server pids for RSS")
	fl.StringVar(&o.wsproxyCmd, "wsproxy-cmd", "", "wsproxy command ({redis} replaced; WSPROXY_LISTEN set); empty: build wsproxy and feed it from Redis Pub/Sub (sources.redis)")
	fl.StringVar(&o.wsproxyEnv, "wsproxy-env", "", "extra wsproxy environment, comma-separated K=V ({redis} replaced), e.g. WSPROXY_SOURCES_REDIS_ENABLED=true,WSPROXY_SOURCES_REDIS_ADDR={redis}")
	fl.StringVar(&o.naiveCmd, "naive-cmd", "", "baseline command ({addr}, {redis} replaced); empty: build tools/naivehub")
	fl.StringVar(&o.wsproxy2Cmd, "wsproxy2-cmd", "", "target wsproxy2: a second wsproxy command, run like -wsproxy-cmd (same environment), to compare two builds in one run")
	fl.DurationVar(&o.cpuPeriod, "cpu-period", loadtest.DefaultCPUPeriod, "the CFS period -cpu-quota is a share of (cpu.cfs_period_us, 1ms to 1s); shorter than one message's fan-out, it caps bursts as a node of that many cores would be")
	fl.Float64Var(&o.cpuQuota, "cpu-quota", 0, "cap every server node at this many cores, each in a cgroup v1 cpu group of its own (cpu.cfs_quota_us; removed afterwards); 0: no cap")
	fl.StringVar(&o.scale, "scale", "", "scale-out rounds, e.g. 1,2,4: run the single target with that many nodes in turn, -conns per node (the same per-node load), and compare per-node p99 and loss with the first")
	fl.StringVar(&o.floorCmd, "floor-cmd", "", "floor command ({addr}, {redis} replaced); empty: build tools/floorhub")
	fl.StringVar(&o.jsonOut, "json", "", "also write the JSON report to this file")
	fl.IntVar(&o.repeat, "repeat", 3, "rounds over the targets, alternating them; the table shows each target's median per metric")
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
	rounds, names, err := planRounds(o, targets)
	if err != nil {
		return err
	}
	for _, rd := range rounds {
		target, modeEnv, offer, err := compressionTarget(rd.target)
		if err != nil {
			return err
		}
		o.nodes = rd.nodes
		cfg := loadtest.Config{
			Name: rd.name, Conns: rd.conns, PerProcess: o.perProcess, Mix: mix, Rate: o.rate, Duration: o.duration,
			Idle: o.idle, Drain: o.drain, Concurrency: o.concurrency, RedisAddr: redisAddr, PayloadBytes: o.payload, Compress: o.compress || offer,
			Feed: o.feed, InflateEvery: o.inflateEvery,
			WorkerCommand: func() *exec.Cmd { return exec.Command(self, "-worker") },
		}
		if o.progress {
			cfg.Progress = os.Stderr
		}
		var servers []*loadtest.Server
		var groups []*loadtest.CPUGroup
		switch target {
		case "external":
			cfg.URLs = strings.Split(o.url, ",")
			for _, p := range strings.Split(o.serverPIDs, ",") {
				if pid, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
					cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
				}
			}
		case "naive", "wsproxy", "wsproxy2", loadtest.FloorTarget:
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
				if o.cpuQuota > 0 {
					g, err := loadtest.NewCPUGroup(fmt.Sprintf("wsload-%d-%d", os.Getpid(), i), o.cpuQuota, o.cpuPeriod)
					if err == nil {
						groups = append(groups, g)
						err = g.Add(s.PID())
					}
					if err != nil {
						stopAll(servers)
						removeGroups(groups)
						return err
					}
				}
				cfg.URLs = append(cfg.URLs, "ws://"+addr+"/ws")
				cfg.ServerPIDs = append(cfg.ServerPIDs, s.PID())
			}
			time.Sleep(500 * time.Millisecond) // let the subscriber settle into PSUBSCRIBE
		default:
			return fmt.Errorf("unknown target %q", target)
		}
		fmt.Fprintf(os.Stderr, "wsload: %s start, load average %s\n", target, fmtLoad(loadtest.ReadLoadAvg()))
		rep, err := loadtest.Run(ctx, cfg)
		stopAll(servers)
		removeGroups(groups)
		if err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		fmt.Fprintf(os.Stderr, "wsload: %s end, load average %s\n", target, fmtLoad(rep.LoadEnd))
		reports = append(reports, rep)
	}
	loadtest.FloorRatios(figures, reports, len(names))
	printTable(os.Stdout, o, medians(names, reports), reports)
	if o.scale != "" {
		printScale(os.Stdout, o, names, reports)
	}
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
	case loadtest.FloorTarget:
		if o.floorCmd != "" {
			return strings.Fields(o.floorCmd), nil, nil
		}
		bin, err := build("wsproxy/tools/floorhub")
		return []string{bin, "-listen", "{addr}", "-redis", "{redis}"}, nil, err
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
		if target == "wsproxy2" {
			if o.wsproxy2Cmd == "" {
				return nil, nil, errors.New("target wsproxy2 needs -wsproxy2-cmd")
			}
			if o.wsproxyCmd == "" {
				env = append(env, "WSPROXY_SOURCES_REDIS_ENABLED=true", "WSPROXY_SOURCES_REDIS_ADDR={redis}")
			}
			return strings.Fields(o.wsproxy2Cmd), env, nil
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

// figures are the rows of the table, in order; each is also reported as a
// ratio to the floor's figure of the same round (Report.VsFloor).
var figures = []loadtest.Figure{
	{Name: "established", Format: "%.0f", Get: func(r loadtest.Report) float64 { return float64(r.Established) }},
	{Name: "failed", Format: "%.0f", Get: func(r loadtest.Report) float64 { return float64(r.Failed) }},
	{Name: "connect/s", Format: "%.0f", Get: func(r loadtest.Report) float64 { return r.ConnectRate }},
	{Name: "published", Format: "%.0f", Get: func(r loadtest.Report) float64 { return float64(r.Published) }},
	{Name: "expected", Format: "%.0f", Get: func(r loadtest.Report) float64 { return float64(r.Expected) }},
	{Name: "received", Format: "%.0f", Get: func(r loadtest.Report) float64 { return float64(r.Received) }},
	{Name: "loss %", Format: "%.3f", Get: func(r loadtest.Report) float64 { return r.LossPct }},
	{Name: "delivered msg/s", Format: "%.0f", Get: func(r loadtest.Report) float64 { return r.DeliveredPerSec }},
	{Name: "p50 ms", Format: "%.2f", Get: func(r loadtest.Report) float64 { return r.Latency.P50 }},
	{Name: "p95 ms", Format: "%.2f", Get: func(r loadtest.Report) float64 { return r.Latency.P95 }},
	{Name: "p99 ms", Format: "%.2f", Get: func(r loadtest.Report) float64 { return r.Latency.P99 }},
	{Name: "max ms", Format: "%.2f", Get: func(r loadtest.Report) float64 { return r.Latency.Max }},
	{Name: "RSS base MB", Format: "%.1f", Get: func(r loadtest.Report) float64 { return r.RSSBaseMB }},
	{Name: "RSS idle MB", Format: "%.1f", Get: func(r loadtest.Report) float64 { return r.RSSIdleMB }},
	{Name: "RSS load MB", Format: "%.1f", Get: func(r loadtest.Report) float64 { return r.RSSLoadMB }},
	{Name: "KB/conn (idle-base)", Format: "%.2f", Get: func(r loadtest.Report) float64 { return r.KBPerConn }},
	{Name: "KB/conn (idle total)", Format: "%.2f", Get: func(r loadtest.Report) float64 { return r.KBPerConnTotal }},
	{Name: "KB/conn (load-base)", Format: "%.2f", Get: func(r loadtest.Report) float64 { return r.KBPerConnLoad }},
	{Name: "compressing conns", Format: "%.0f", Get: func(r loadtest.Report) float64 { return float64(r.Compressed) }},
	{Name: "inflating conns", Format: "%.0f", Get: func(r loadtest.Report) float64 { return float64(r.Inflating) }},
	{Name: "wire B/msg", Format: "%.1f", Get: func(r loadtest.Report) float64 { return r.WireBytesPerMsg }},
	{Name: "server CPU µs/msg", Format: "%.3f", Get: func(r loadtest.Report) float64 { return r.ServerCPUPerMsgUS }},
	{Name: "load avg start (1m)", Format: "%.2f", Get: func(r loadtest.Report) float64 { return r.LoadStart[0] }},
	{Name: "load avg end (1m)", Format: "%.2f", Get: func(r loadtest.Report) float64 { return r.LoadEnd[0] }},
}

func fmtLoad(l loadtest.LoadAvg) string { return fmt.Sprintf("%.2f, %.2f, %.2f", l[0], l[1], l[2]) }

// printTable prints one column per target (medians over the rounds, reps)
// and, when the floor was measured, one ratio column per other target: the
// median over the rounds of that round's ratio to the floor (all holds
// every round's report). Without a floor, every target after the first
// gets its ratio to the first.
func printTable(w io.Writer, o options, reps, all []loadtest.Report) {
	fmt.Fprintf(w, "wsload %s: %d conns, %d node(s), mix %s, feed %s, %.0f msg/s for %s, %d round(s)\n",
		time.Now().UTC().Format(time.RFC3339), o.conns, o.nodes, o.mix, o.feed, o.rate, o.duration, max(1, o.repeat))
	hasFloor := false
	for _, r := range all {
		hasFloor = hasFloor || r.Name == loadtest.FloorTarget
	}
	byTarget := map[string][]loadtest.Report{}
	for _, r := range all {
		byTarget[r.Name] = append(byTarget[r.Name], r)
	}
	var others []string
	for _, r := range reps {
		if base := baseName(r.Name); base != loadtest.FloorTarget {
			others = append(others, base)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, r := range reps {
		fmt.Fprintf(tw, "%s\t", r.Name)
	}
	switch {
	case hasFloor:
		for _, t := range others {
			fmt.Fprintf(tw, "%s/floor\t", t)
		}
	case len(reps) >= 2:
		for _, r := range reps[1:] {
			fmt.Fprintf(tw, "%s/%s\t", r.Name, reps[0].Name)
		}
	}
	fmt.Fprintln(tw)
	for _, f := range figures {
		fmt.Fprintf(tw, "%s\t", f.Name)
		for _, r := range reps {
			fmt.Fprintf(tw, f.Format+"\t", f.Get(r))
		}
		switch {
		case hasFloor:
			for _, t := range others {
				if v, n := loadtest.MedianRatio(byTarget[t], f.Name); n > 0 {
					fmt.Fprintf(tw, "%.2fx\t", v)
				} else {
					fmt.Fprint(tw, "-\t")
				}
			}
		case len(reps) >= 2:
			for _, r := range reps[1:] {
				if v := f.Ratio(r, reps[0]); !math.IsNaN(v) {
					fmt.Fprintf(tw, "%.2fx\t", v)
				} else {
					fmt.Fprint(tw, "-\t")
				}
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if hasFloor {
		for _, t := range others {
			for i, r := range byTarget[t] {
				fmt.Fprintf(w, "%s/floor round %d: p99 %.2fx, server CPU/msg %.2fx, KB/conn %.2fx, loss %.3f%% (floor %.3f%%), load %s\n",
					t, i+1, r.VsFloor["p99 ms"], r.VsFloor["server CPU µs/msg"], r.VsFloor["KB/conn (idle-base)"],
					r.LossPct, byTarget[loadtest.FloorTarget][min(i, len(byTarget[loadtest.FloorTarget])-1)].LossPct, fmtLoad(r.LoadStart))
			}
		}
	}
	for _, r := range reps {
		if len(r.NodeP99) > 0 {
			fmt.Fprintf(w, "%s per-node p99 ms: %v\n", r.Name, r.NodeP99)
		}
		if len(r.Errors) > 0 {
			fmt.Fprintf(w, "%s connect errors (first): %v\n", r.Name, r.Errors)
		}
	}
}

// baseName strips the "(medN)" suffix medians adds.
func baseName(name string) string {
	if i := strings.IndexByte(name, '('); i >= 0 {
		return name[:i]
	}
	return name
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
			func(r *loadtest.Report) *float64 { return &r.KBPerConnLoad },
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
