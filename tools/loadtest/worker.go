package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Mix weighs the connection classes: All connections never subscribe (the
// legacy frontend: they receive every message), Exchange connections
// subscribe to one exchange, Symbol connections to one symbol's trades.
type Mix struct {
	All      int `json:"all"`
	Exchange int `json:"exchange"`
	Symbol   int `json:"symbol"`
}

func (m Mix) total() int { return m.All + m.Exchange + m.Symbol }

// Universe is what the publisher cycles through: message k is a trade on
// Exchanges[k%E] for Symbols[(k/E)%S].
type Universe struct {
	Exchanges []string `json:"exchanges"`
	Symbols   []string `json:"symbols"`
}

// groupOf returns the class key of global connection i and its subscribe
// message ("" for none).
func groupOf(i int, m Mix, u Universe) (key string, sub string) {
	w := m.total()
	r, k := i%w, i/w
	switch {
	case r < m.All:
		return "all", ""
	case r < m.All+m.Exchange:
		ex := u.Exchanges[k%len(u.Exchanges)]
		return "ex:" + ex, fmt.Sprintf(`{"type":"subscribe","payload":{"exchange":[%q]}}`, ex)
	default:
		sym := u.Symbols[k%len(u.Symbols)]
		return "sym:" + sym, fmt.Sprintf(`{"type":"subscribe","payload":{"symbols":[%q],"dataTypes":["trade"]}}`, sym)
	}
}

// WorkerConfig is one process's share of the connections.
type WorkerConfig struct {
	URLs           []string      `json:"urls"`
	Offset         int           `json:"offset"` // global index of the first connection
	Conns          int           `json:"conns"`
	SourceIPs      []string      `json:"sourceIps"`
	Mix            Mix           `json:"mix"`
	Universe       Universe      `json:"universe"`
	ConnectTimeout time.Duration `json:"connectTimeout"`
	Concurrency    int           `json:"concurrency"`
	Compress       bool          `json:"compress"`
	InflateEvery   int           `json:"inflateEvery"`
}

// GroupCount is what one class of connections received.
type GroupCount struct {
	Conns    int    `json:"conns"`
	Received uint64 `json:"received"`
}

// workerMsg is one JSON line from a worker.
type workerMsg struct {
	Ready    *readyMsg     `json:"ready,omitempty"`
	Progress *progressMsg  `json:"progress,omitempty"`
	Result   *WorkerResult `json:"result,omitempty"`
}

type readyMsg struct {
	Established int      `json:"established"`
	Failed      int      `json:"failed"`
	Seconds     float64  `json:"seconds"`
	Errors      []string `json:"errors,omitempty"`
	// Groups counts established connections per class key.
	Groups map[string]int `json:"groups"`
}

type progressMsg struct {
	Received     uint64 `json:"received"`
	Disconnected int    `json:"disconnected"`
}

// WorkerResult is a worker's final report.
type WorkerResult struct {
	readyMsg
	Received     uint64                `json:"received"`
	Disconnected int                   `json:"disconnected"`
	Groups       map[string]GroupCount `json:"groups"`
	Hist         []Hist                `json:"hist"` // per URL
	// WireBytes read from the sockets once connections were ready;
	// Compressed: connections that agreed to permessage-deflate.
	WireBytes  uint64 `json:"wireBytes"`
	Compressed int    `json:"compressed"`
	// Inflating counts the connections that decoded every frame and
	// recorded latency (all, or every InflateEvery-th).
	Inflating int `json:"inflating"`
}

// RunWorker opens cfg.Conns connections, reports readiness, then reports
// progress every 250 ms until a line "stop" arrives on in (or in ends), and
// finally reports its result. Every report is one JSON line on out.
func RunWorker(cfg WorkerConfig, in io.Reader, out io.Writer) error {
	enc := json.NewEncoder(out)
	var encMu sync.Mutex
	emit := func(m workerMsg) error {
		encMu.Lock()
		defer encMu.Unlock()
		return enc.Encode(m)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 256
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 60 * time.Second
	}
	const shards = 8 // spreads atomic counter traffic
	hists := make([][shards]*hist, len(cfg.URLs))
	for i := range hists {
		for k := range hists[i] {
			hists[i][k] = new(hist)
		}
	}
	var groupKeys []string
	groupIdx := map[string]int{}
	subs := make([]string, cfg.Conns)
	groups := make([]int, cfg.Conns)
	for j := 0; j < cfg.Conns; j++ {
		key, sub := groupOf(cfg.Offset+j, cfg.Mix, cfg.Universe)
		g, ok := groupIdx[key]
		if !ok {
			g = len(groupKeys)
			groupIdx[key] = g
			groupKeys = append(groupKeys, key)
		}
		groups[j], subs[j] = g, sub
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout)
	defer cancel()
	conns := make([]*wsConn, cfg.Conns)
	sem := make(chan struct{}, cfg.Concurrency)
	var (
		wg, readers sync.WaitGroup
		mu          sync.Mutex
		errs        []string
		failed      int
	)
	start := time.Now()
	for j := 0; j < cfg.Conns; j++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			g := cfg.Offset + j
			urlIdx := g % len(cfg.URLs)
			ip := ""
			if len(cfg.SourceIPs) > 0 {
				ip = cfg.SourceIPs[g%len(cfg.SourceIPs)]
			}
			c, err := dialWS(ctx, cfg.URLs[urlIdx], ip, cfg.ConnectTimeout, cfg.Compress)
			if err == nil {
				err = c.waitText([]byte(`"welcome"`))
				if err == nil && subs[j] != "" {
					if err = c.writeFrame(0x1, []byte(subs[j])); err == nil {
						err = c.waitText([]byte(`"subscribed"`))
					}
				}
				if err != nil {
					c.nc.Close()
				}
			}
			<-sem
			if err != nil {
				mu.Lock()
				failed++
				if len(errs) < 5 {
					errs = append(errs, err.Error())
				}
				mu.Unlock()
				return
			}
			_ = c.nc.SetDeadline(time.Time{})
			c.markReady()
			c.group = groups[j]
			c.countOnly = cfg.InflateEvery > 1 && g%cfg.InflateEvery != 0
			conns[j] = c
			readers.Add(1)
			go func() {
				defer readers.Done()
				if c.countOnly {
					c.countLoop()
				} else {
					c.readLoop(hists[urlIdx][j%shards])
				}
			}()
		}(j)
	}
	wg.Wait()
	ready := readyMsg{Established: cfg.Conns - failed, Failed: failed, Seconds: time.Since(start).Seconds(), Errors: errs, Groups: map[string]int{}}
	for _, c := range conns {
		if c != nil {
			ready.Groups[groupKeys[c.group]]++
		}
	}
	if err := emit(workerMsg{Ready: &ready}); err != nil {
		return err
	}

	totals := func() (uint64, int) {
		var n uint64
		d := 0
		for _, c := range conns {
			if c == nil {
				continue
			}
			n += c.received.Load()
			if c.closed.Load() {
				d++
			}
		}
		return n, d
	}
	stop := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			if sc.Text() == "stop" {
				break
			}
		}
		close(stop)
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-tick.C:
			n, d := totals()
			if err := emit(workerMsg{Progress: &progressMsg{Received: n, Disconnected: d}}); err != nil {
				return err
			}
		}
	}
	n, d := totals()
	res := WorkerResult{readyMsg: ready, Received: n, Disconnected: d, Groups: map[string]GroupCount{}}
	for _, c := range conns {
		if c == nil {
			continue
		}
		gc := res.Groups[groupKeys[c.group]]
		gc.Conns++
		gc.Received += c.received.Load()
		res.WireBytes += c.wireBytes()
		if c.z != nil {
			res.Compressed++
		}
		if !c.countOnly {
			res.Inflating++
		}
		res.Groups[groupKeys[c.group]] = gc
	}
	for _, hs := range hists {
		var m Hist
		for _, h := range hs {
			m.Merge(h.sparse())
		}
		res.Hist = append(res.Hist, m)
	}
	for _, c := range conns {
		if c != nil {
			c.closed.Store(true)
			c.nc.Close()
		}
	}
	waitTimeout(&readers, 5*time.Second)
	return emit(workerMsg{Result: &res})
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// readLoop counts data frames and records their latency until the socket
// ends. It answers pings so that long idle phases survive heartbeats.
func (c *wsConn) readLoop(h *hist) {
	defer c.closed.Store(true)
	for {
		op, p, err := c.readFrame()
		if err != nil {
			return
		}
		switch op {
		case 0x1:
			if ts, ok := sentAt(p); ok {
				c.received.Add(1)
				h.record(time.Duration(time.Now().UnixNano() - ts))
			}
		case 0x9:
			if c.writeFrame(0xA, p) != nil {
				return
			}
		case 0x8:
			return
		}
	}
}

// countLoop counts data frames without decoding them, until the socket ends.
// Once a connection is ready (welcome and subscribe reply read), the server
// sends it text frames of market data, one message each (the unbatched
// legacy shape), and pings; it compresses text frames only. So a compressed
// text frame is counted as one message from its header, its payload skipped;
// an uncompressed text frame counts when it carries the publisher's
// timestamp, as in readLoop. Pings are answered.
func (c *wsConn) countLoop() {
	defer c.closed.Store(true)
	for {
		op, compressed, n, err := c.readHeader()
		if err != nil {
			return
		}
		if op == 0x1 && compressed {
			if _, err := c.br.Discard(int(n)); err != nil {
				return
			}
			c.received.Add(1)
			continue
		}
		p, err := c.readPayload(n)
		if err != nil {
			return
		}
		switch op {
		case 0x1:
			if bytes.Contains(p, sentAtKey) {
				c.received.Add(1)
			}
		case 0x9:
			if c.writeFrame(0xA, p) != nil {
				return
			}
		case 0x8:
			return
		}
	}
}
