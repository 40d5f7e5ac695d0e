package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPerProcess is how many connections one process opens at most: the
// machine allows 20,000 open files per process, and a process needs a few for
// itself.
const DefaultPerProcess = 19000

// Config describes one measured run against one server (or one group of
// server nodes).
type Config struct {
	// Name labels the run in reports.
	Name string `json:"name"`
	// URLs of the WebSocket endpoints; connections are spread round-robin.
	URLs []string `json:"urls"`
	// Conns to open. Required.
	Conns int `json:"conns"`
	// PerProcess bounds the connections of one process; beyond it worker
	// processes are started through WorkerCommand. 0: DefaultPerProcess.
	PerProcess int `json:"perProcess"`
	// SourceIPs to bind; nil: DefaultSourceIPs.
	SourceIPs []string `json:"sourceIps"`
	// Mix of connection classes; zero: all connections unfiltered.
	Mix Mix `json:"mix"`
	// Universe the publisher cycles through; zero: 4 exchanges × 4 symbols.
	Universe Universe `json:"universe"`
	// Rate of published messages per second. Required.
	Rate float64 `json:"rate"`
	// Duration of the publishing phase. Required.
	Duration time.Duration `json:"duration"`
	// Idle is how long connections sit idle before publishing starts (the
	// idle-memory sample is taken at its end). 0: 2s.
	Idle time.Duration `json:"idle"`
	// Drain bounds the wait for in-flight messages after publishing. 0: 10s.
	Drain time.Duration `json:"drain"`
	// ConnectTimeout bounds the whole connect phase. 0: 120s.
	ConnectTimeout time.Duration `json:"connectTimeout"`
	// Concurrency of handshakes per process. 0: 256.
	Concurrency int `json:"concurrency"`
	// RedisAddr to publish to. Required.
	RedisAddr string `json:"redisAddr"`
	// PayloadBytes pads each message's data to about this size. 0: none.
	// Trades feed only.
	PayloadBytes int `json:"payloadBytes"`
	// Feed is what the publisher sends: FeedTrades ("" too) or FeedDemo
	// (feed.go).
	Feed string `json:"feed"`
	// Compress offers permessage-deflate, as browsers do.
	Compress bool `json:"compress"`
	// InflateEvery > 1 makes only every InflateEvery-th connection (by
	// global index) decode frames and record latency; the others count data
	// frames from their headers and skip the payload (countLoop in
	// worker.go), so that on a shared machine the clients' inflating does not
	// take the CPU from the server measured. Loss is still counted on every
	// connection. 0 or 1: every connection decodes.
	InflateEvery int `json:"inflateEvery"`
	// ServerPIDs are sampled for resident memory (summed); nil: not sampled.
	ServerPIDs []int `json:"-"`
	// Progress receives a live progress line; nil: none.
	Progress io.Writer `json:"-"`
	// AfterLoad, when set, is called once after the publishing and drain
	// phase, while every connection is still open (to sample the server).
	AfterLoad func() `json:"-"`
	// WorkerCommand returns a command that runs RunWorker over its stdin and
	// stdout; required only when Conns > PerProcess.
	WorkerCommand func() *exec.Cmd `json:"-"`
}

func (c *Config) applyDefaults() {
	if c.PerProcess <= 0 {
		c.PerProcess = DefaultPerProcess
	}
	if c.SourceIPs == nil {
		c.SourceIPs = DefaultSourceIPs()
	}
	if c.Mix.total() == 0 {
		c.Mix = Mix{All: 1}
	}
	if len(c.Universe.Exchanges) == 0 {
		c.Universe.Exchanges = []string{"binance", "okx", "bybit", "coinbase"}
	}
	if len(c.Universe.Symbols) == 0 {
		c.Universe.Symbols = []string{"BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"}
	}
	if c.Idle <= 0 {
		c.Idle = 2 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 10 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 120 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
}

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("loadtest: bad config")

func (c *Config) validate() error {
	switch {
	case len(c.URLs) == 0:
		return fmt.Errorf("%w: no URL", ErrConfig)
	case c.Conns <= 0:
		return fmt.Errorf("%w: conns must be > 0", ErrConfig)
	case c.Rate <= 0 || c.Duration <= 0:
		return fmt.Errorf("%w: rate and duration must be > 0", ErrConfig)
	case c.RedisAddr == "":
		return fmt.Errorf("%w: no Redis address", ErrConfig)
	case c.Feed != "" && c.Feed != FeedTrades && c.Feed != FeedDemo:
		return fmt.Errorf("%w: feed %q: want %s or %s", ErrConfig, c.Feed, FeedTrades, FeedDemo)
	case c.Feed == FeedDemo && c.PayloadBytes > 0:
		return fmt.Errorf("%w: payload padding applies to the %s feed only", ErrConfig, FeedTrades)
	case c.InflateEvery < 0:
		return fmt.Errorf("%w: inflate-every must be >= 0", ErrConfig)
	case c.Conns > c.PerProcess && c.WorkerCommand == nil:
		return fmt.Errorf("%w: %d connections need worker processes (more than %d per process)", ErrConfig, c.Conns, c.PerProcess)
	}
	return nil
}

// Latency percentiles in milliseconds, from the publisher's send to the
// client's read.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Report is the outcome of one run.
type Report struct {
	Name            string    `json:"name"`
	Date            string    `json:"date"`
	Conns           int       `json:"conns"`
	Processes       int       `json:"processes"`
	Established     int       `json:"established"`
	Failed          int       `json:"failed"`
	ConnectSeconds  float64   `json:"connectSeconds"`
	ConnectRate     float64   `json:"connectRate"`
	Rate            float64   `json:"rate"`
	Feed            string    `json:"feed"`
	Published       uint64    `json:"published"`
	Expected        uint64    `json:"expected"`
	Received        uint64    `json:"received"`
	Lost            int64     `json:"lost"`
	LossPct         float64   `json:"lossPct"`
	Disconnected    int       `json:"disconnected"`
	DeliveredPerSec float64   `json:"deliveredPerSec"`
	Latency         Latency   `json:"latencyMs"`
	NodeP99         []float64 `json:"nodeP99Ms,omitempty"`
	RSSBaseMB       float64   `json:"rssBaseMB"`
	RSSIdleMB       float64   `json:"rssIdleMB"`
	RSSLoadMB       float64   `json:"rssLoadMB"`
	// Compressed counts connections that agreed to permessage-deflate;
	// WireBytesPerMsg is the bytes read from the client sockets after the
	// handshake (and the welcome and subscribe replies) per delivered
	// message: frames with their headers, pings included; ServerCPUPerMsgUS
	// the servers' CPU time (user + system, /proc/PID/stat) from the start
	// of publishing to the end of the drain, per delivered message.
	Compressed int `json:"compressed"`
	// Inflating counts the connections that decoded every frame and gave
	// the latency figures (Config.InflateEvery).
	Inflating         int     `json:"inflating"`
	WireBytesPerMsg   float64 `json:"wireBytesPerMsg"`
	ServerCPUPerMsgUS float64 `json:"serverCpuPerMsgUs"`
	KBPerConn         float64 `json:"kbPerConn"`
	KBPerConnTotal    float64 `json:"kbPerConnTotal"`
	// KBPerConnLoad is RSS after the publishing phase less the base, per
	// connection: what a connection costs once it has received data.
	KBPerConnLoad float64  `json:"kbPerConnLoad"`
	Errors        []string `json:"errors,omitempty"`
	// LoadStart and LoadEnd are the box's load average when the run began
	// and ended; VsFloor the ratios of this report's figures to the floor's
	// in the same round (set by the caller, FloorRatios).
	LoadStart LoadAvg            `json:"loadStart"`
	LoadEnd   LoadAvg            `json:"loadEnd"`
	VsFloor   map[string]float64 `json:"vsFloor,omitempty"`
}

type workerLine struct {
	w   int
	msg workerMsg
	err error
}

type workerProc struct {
	stdin io.WriteCloser
	wait  func() error
}

// Run performs one measured run and returns its report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.applyDefaults()
	rep := Report{Name: cfg.Name, Date: time.Now().UTC().Format(time.RFC3339), Conns: cfg.Conns, Rate: cfg.Rate, Feed: cfg.Feed, LoadStart: ReadLoadAvg()}
	if err := cfg.validate(); err != nil {
		return rep, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: 4})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return rep, fmt.Errorf("loadtest: redis %s: %w", cfg.RedisAddr, err)
	}
	rep.RSSBaseMB = rssMB(cfg.ServerPIDs)

	nw := (cfg.Conns + cfg.PerProcess - 1) / cfg.PerProcess
	rep.Processes = nw
	lines := make(chan workerLine, 64)
	procs := make([]workerProc, nw)
	for w := 0; w < nw; w++ {
		wc := WorkerConfig{URLs: cfg.URLs, Offset: w * cfg.PerProcess, Conns: min(cfg.PerProcess, cfg.Conns-w*cfg.PerProcess),
			SourceIPs: cfg.SourceIPs, Mix: cfg.Mix, Universe: cfg.Universe, ConnectTimeout: cfg.ConnectTimeout, Concurrency: cfg.Concurrency,
			Compress: cfg.Compress, InflateEvery: cfg.InflateEvery}
		p, out, err := startWorker(cfg, wc, nw)
		if err != nil {
			for _, q := range procs[:w] {
				q.stdin.Close()
			}
			return rep, err
		}
		procs[w] = p
		go readWorker(w, out, lines)
	}
	defer func() {
		for _, p := range procs {
			p.stdin.Close()
			_ = p.wait()
		}
	}()

	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "\r\033[K[%s] "+format, append([]any{cfg.Name}, args...)...)
		}
	}
	progress("connecting %d connections over %d process(es)...", cfg.Conns, nw)

	received := make([]uint64, nw)
	disconnected := make([]int, nw)
	results := make([]*WorkerResult, nw)
	readyN := 0
	groupConns := map[string]int{}
	handle := func(l workerLine) error {
		if l.err != nil {
			return fmt.Errorf("loadtest: worker %d: %w", l.w, l.err)
		}
		switch {
		case l.msg.Ready != nil:
			r := l.msg.Ready
			readyN++
			rep.Established += r.Established
			rep.Failed += r.Failed
			rep.ConnectSeconds = max(rep.ConnectSeconds, r.Seconds)
			rep.Errors = append(rep.Errors, r.Errors...)
			for k, n := range r.Groups {
				groupConns[k] += n
			}
		case l.msg.Progress != nil:
			received[l.w] = l.msg.Progress.Received
			disconnected[l.w] = l.msg.Progress.Disconnected
		case l.msg.Result != nil:
			results[l.w] = l.msg.Result
		}
		return nil
	}
	connectDeadline := time.After(cfg.ConnectTimeout + 30*time.Second)
	for readyN < nw {
		select {
		case l := <-lines:
			if err := handle(l); err != nil {
				return rep, err
			}
		case <-connectDeadline:
			return rep, fmt.Errorf("loadtest: workers not ready after %s", cfg.ConnectTimeout+30*time.Second)
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
	if rep.ConnectSeconds > 0 {
		rep.ConnectRate = float64(rep.Established) / rep.ConnectSeconds
	}
	progress("%d established, %d failed in %.1fs; idle %s", rep.Established, rep.Failed, rep.ConnectSeconds, cfg.Idle)

	pump := func(until time.Time) error {
		for time.Now().Before(until) {
			select {
			case l := <-lines:
				if err := handle(l); err != nil {
					return err
				}
			case <-time.After(time.Until(until)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	if err := pump(time.Now().Add(cfg.Idle)); err != nil {
		return rep, err
	}
	rep.RSSIdleMB = rssMB(cfg.ServerPIDs)
	if rep.Established > 0 && len(cfg.ServerPIDs) > 0 {
		rep.KBPerConn = (rep.RSSIdleMB - rep.RSSBaseMB) * 1024 / float64(rep.Established)
		rep.KBPerConnTotal = rep.RSSIdleMB * 1024 / float64(rep.Established)
	}

	// Publish at the fixed rate in the background; report progress here.
	pub := newPublisher(rdb, cfg)
	pubDone := make(chan error, 1)
	cpuStart := cpuNS(cfg.ServerPIDs)
	start := time.Now()
	go func() { pubDone <- pub.run(ctx, start) }()
	sum := func(v []uint64) (n uint64) {
		for _, x := range v {
			n += x
		}
		return n
	}
	var (
		lastN      uint64
		lastChange = start
		lastPrint  = start
		lastPrintN uint64
		pubErr     error
		pubEnded   bool
		drainEnd   time.Time
	)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case l := <-lines:
			if err := handle(l); err != nil {
				return rep, err
			}
			continue
		case err := <-pubDone:
			pubErr, pubEnded = err, true
			drainEnd = time.Now().Add(cfg.Drain)
			if err != nil {
				return rep, err
			}
			continue
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		n := sum(received)
		if n != lastN {
			lastN, lastChange = n, now
		}
		if now.Sub(lastPrint) >= time.Second {
			d := 0
			for _, x := range disconnected {
				d += x
			}
			progress("conns %d  published %d  received %d (%.0f/s)  expected %d  disconnected %d",
				rep.Established, pub.published(), n, float64(n-lastPrintN)/now.Sub(lastPrint).Seconds(), pub.expected(groupConns), d)
			lastPrint, lastPrintN = now, n
		}
		if !pubEnded {
			continue
		}
		if now.After(drainEnd) || now.Sub(lastChange) > 2*time.Second {
			break
		}
		if n >= pub.expected(groupConns) {
			break
		}
	}
	_ = pubErr
	rep.RSSLoadMB = rssMB(cfg.ServerPIDs)
	if rep.Established > 0 && len(cfg.ServerPIDs) > 0 {
		rep.KBPerConnLoad = (rep.RSSLoadMB - rep.RSSBaseMB) * 1024 / float64(rep.Established)
	}
	cpuEnd := cpuNS(cfg.ServerPIDs)
	if cfg.AfterLoad != nil {
		cfg.AfterLoad()
	}
	for _, p := range procs {
		_, _ = io.WriteString(p.stdin, "stop\n")
	}
	resultDeadline := time.After(30 * time.Second)
	for got := 0; got < nw; {
		select {
		case l := <-lines:
			if err := handle(l); err != nil {
				return rep, err
			}
			if l.msg.Result != nil {
				got++
			}
		case <-resultDeadline:
			return rep, errors.New("loadtest: workers did not report results within 30s")
		}
	}
	if cfg.Progress != nil {
		fmt.Fprint(cfg.Progress, "\r\033[K")
	}

	hists := make([]Hist, len(cfg.URLs))
	var all Hist
	var wire uint64
	for _, r := range results {
		wire += r.WireBytes
		rep.Compressed += r.Compressed
		rep.Inflating += r.Inflating
		rep.Received += r.Received
		rep.Disconnected += r.Disconnected
		for i, h := range r.Hist {
			hists[i].Merge(h)
			all.Merge(h)
		}
	}
	rep.Published = pub.published()
	rep.Expected = pub.expected(groupConns)
	rep.Lost = int64(rep.Expected) - int64(rep.Received)
	if rep.Received > 0 {
		rep.WireBytesPerMsg = float64(wire) / float64(rep.Received)
		rep.ServerCPUPerMsgUS = float64(cpuEnd-cpuStart) / 1e3 / float64(rep.Received)
	}
	if rep.Expected > 0 {
		rep.LossPct = 100 * float64(rep.Lost) / float64(rep.Expected)
	}
	if el := lastChange.Sub(start).Seconds(); el > 0 {
		rep.DeliveredPerSec = float64(rep.Received) / el
	}
	rep.Latency = Latency{P50: all.Quantile(0.50), P95: all.Quantile(0.95), P99: all.Quantile(0.99), Max: float64(all.MaxUS) / 1000}
	if len(hists) > 1 {
		for _, h := range hists {
			rep.NodeP99 = append(rep.NodeP99, h.Quantile(0.99))
		}
	}
	rep.LoadEnd = ReadLoadAvg()
	return rep, nil
}

func startWorker(cfg Config, wc WorkerConfig, nw int) (workerProc, io.Reader, error) {
	b, err := json.Marshal(wc)
	if err != nil {
		return workerProc{}, nil, err
	}
	if nw == 1 && cfg.Conns <= cfg.PerProcess {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := RunWorker(wc, inR, outW)
			outW.CloseWithError(err)
			done <- err
		}()
		return workerProc{stdin: inW, wait: func() error { return <-done }}, outR, nil
	}
	cmd := cfg.WorkerCommand()
	inR, inW := io.Pipe()
	cmd.Stdin = io.MultiReader(strings.NewReader(string(b)+"\n"), inR)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return workerProc{}, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return workerProc{}, nil, fmt.Errorf("loadtest: start worker: %w", err)
	}
	return workerProc{stdin: inW, wait: cmd.Wait}, out, nil
}

// WorkerMain is the body of a worker process: a WorkerConfig JSON line on in,
// then RunWorker.
func WorkerMain(in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("loadtest: worker config: %w", err)
	}
	var wc WorkerConfig
	if err := json.Unmarshal(line, &wc); err != nil {
		return fmt.Errorf("loadtest: worker config: %w", err)
	}
	return RunWorker(wc, br, out)
}

func readWorker(w int, r io.Reader, lines chan<- workerLine) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			lines <- workerLine{w: w, err: fmt.Errorf("bad line %q: %w", sc.Text(), err)}
			return
		}
		lines <- workerLine{w: w, msg: m}
	}
	if err := sc.Err(); err != nil {
		lines <- workerLine{w: w, err: err}
	}
}

// rssMB sums VmRSS of pids, in MiB.
func rssMB(pids []int) float64 {
	var kb float64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				v, _ := strconv.ParseFloat(f[1], 64)
				kb += v
			}
		}
	}
	return kb / 1024
}
