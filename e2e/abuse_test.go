package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsproxy/internal/wstest"
)

// hostileFrames are malformed client frames of every kind the node
// classifies (text unless binary): not JSON, JSON that is not an object,
// objects without a usable type, unknown and wrong-case types, invalid
// filters, a filter over the symbol limit, and a binary frame.
var hostileFrames = func() []struct {
	binary bool
	data   []byte
} {
	syms := make([]string, 101)
	for i := range syms {
		syms[i] = `"S` + strconv.Itoa(i) + `"`
	}
	texts := []string{
		`not json`, `{"type":`, `null`, `[]`, `"str"`, `{}`, `{"type":5}`,
		`{"type":"Ping"}`, `{"type":"bogus","payload":{}}`,
		`{"type":"subscribe","payload":5}`, `{"type":"subscribe","payload":{"exchange":"binance"}}`,
		`{"type":"subscribe","payload":{"symbols":[` + strings.Join(syms, ",") + `]}}`,
	}
	out := make([]struct {
		binary bool
		data   []byte
	}, 0, len(texts)+1)
	for _, s := range texts {
		out = append(out, struct {
			binary bool
			data   []byte
		}{false, []byte(s)})
	}
	return append(out, struct {
		binary bool
		data   []byte
	}{true, []byte{0, 1, 2, 'x'}})
}()

// badFrameReasons are the client_errors_total reasons of bad frames.
var badFrameReasons = []string{"invalid_message", "unknown_type", "invalid_filter", "limit_exceeded", "binary_frame"}

type nodeMetrics struct {
	Connections       int64             `json:"connections"`
	ClientErrors      map[string]uint64 `json:"clientErrors"`
	ErrorBudgetCloses uint64            `json:"errorBudgetCloses"`
	Throughput        struct {
		ErrorRate float64 `json:"errorRate"`
	} `json:"throughput"`
}

func (m nodeMetrics) badFrames() uint64 {
	var n uint64
	for _, r := range badFrameReasons {
		n += m.ClientErrors[r]
	}
	return n
}

// probeNode answers /readyz's and health's status codes and health's status.
func probeNode(t testing.TB, p *proc) (ready int, healthCode int, health string) {
	t.Helper()
	ready, _ = httpDo(t, "GET", p.httpURL("/readyz"), "")
	var h struct {
		Status string `json:"status"`
	}
	healthCode = getJSON(t, p.httpURL("/api/websocket/health"), &h)
	return ready, healthCode, h.Status
}

// TestHostileClientsLeaveNodeReady: 50 clients each send 1,000 malformed
// frames of every kind at their allowed rate (limits.message_rate and the
// bad-frame budget, both raised so that the test takes seconds). Throughout,
// /readyz stays 200 and health healthy; a bystander keeps receiving with an
// unchanged p99 (at most 1.5 × its quiet p99 + 10 ms); every frame is
// counted in client_errors_total and no attacker is closed.
func TestHostileClientsLeaveNodeReady(t *testing.T) {
	const (
		attackers = 50
		frames    = 1000
		perSecond = 25 // each; the limits below allow 100
	)
	p := startProcBin(t, plainBinary(t), []string{
		"WSPROXY_SOURCES_DEMO_ENABLED=false",
		"WSPROXY_SOURCES_INGEST_ENABLED=true",
		"WSPROXY_LIMITS_MESSAGE_RATE=100",
		"WSPROXY_LIMITS_MESSAGE_BURST=200",
		"WSPROXY_LIMITS_MAX_BAD_FRAMES_PER_MINUTE=6000",
		// Latency is the bystander's measure here; health's latency
		// thresholds are set out of the way of a shared, loaded machine.
		"WSPROXY_HEALTH_LATENCY_DEGRADED=1s",
		"WSPROXY_HEALTH_LATENCY_UNHEALTHY=2s",
	})

	// The bystander receives a feed of 100 messages/s, each carrying its
	// send time.
	by := wstest.Dial(t, p.url("/ws"))
	by.NextOfType(t, "welcome", 5*time.Second)
	// Quiet and attack alternate in slots of one second from start (the
	// attack in odd slots), so that the load other work puts on the machine
	// weighs on both measures alike; a bystander message belongs to the
	// slot it was sent in.
	const slot = time.Second
	var startNs atomic.Int64 // 0 until the attack starts
	attackSlot := func(ns int64) bool {
		st := startNs.Load()
		return st != 0 && ns >= st && ((ns-st)/int64(slot))%2 == 1
	}
	var latMu sync.Mutex
	var quiet, attack []time.Duration
	stopFeed := make(chan struct{})
	var feedWG sync.WaitGroup
	feedWG.Add(2)
	go func() { // publisher
		defer feedWG.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			select {
			case <-stopFeed:
				return
			case <-tick.C:
			}
			line := fmt.Sprintf(`{"exchange":"binance","symbol":"BTC/USDT","type":"trade","timestamp":%d,"data":{"sent":%d}}`, seq, time.Now().UnixNano())
			resp, err := http.Post(p.httpURL("/api/dataflow/ingest"), "application/x-ndjson", strings.NewReader(line))
			if err == nil {
				resp.Body.Close()
			}
		}
	}()
	go func() { // bystander
		defer feedWG.Done()
		for {
			m, ok := by.TryNext(500 * time.Millisecond)
			if !ok {
				select {
				case <-stopFeed:
					return
				default:
					continue
				}
			}
			if m.Type != "trade" {
				continue
			}
			var d struct {
				Payload struct {
					Data struct {
						Sent int64 `json:"sent"`
					} `json:"data"`
				} `json:"payload"`
			}
			if json.Unmarshal(m.Raw, &d) != nil || d.Payload.Data.Sent == 0 {
				continue
			}
			lat := time.Since(time.Unix(0, d.Payload.Data.Sent))
			latMu.Lock()
			switch {
			case attackSlot(d.Payload.Data.Sent):
				attack = append(attack, lat)
			case startNs.Load() != 0 && d.Payload.Data.Sent >= startNs.Load():
				quiet = append(quiet, lat)
			}
			latMu.Unlock()
		}
	}()

	// The attackers write pre-encoded (masked) frames and throw replies
	// away unparsed, so that the test process spends little of the
	// machine's CPU on them.
	wire := make([][]byte, len(hostileFrames))
	for i, f := range hostileFrames {
		op := byte(opText)
		if f.binary {
			op = opBin
		}
		wire[i] = encodeFrame(frame{Fin: true, Op: op, Payload: f.data})
	}
	conns := make([]*rawConn, attackers)
	closed := make([]atomic.Bool, attackers)
	for i := range conns {
		conns[i] = rawDial(t, p.addr, "/ws", nil)
		go func() { // replies (some kinds get one) are read and thrown away
			_, _ = io.Copy(io.Discard, conns[i].br)
			closed[i].Store(true)
		}()
	}

	var before nodeMetrics
	getJSON(t, p.httpURL("/api/websocket/metrics"), &before)
	var wg sync.WaitGroup
	start := time.Now()
	startNs.Store(start.UnixNano())
	// sendAt is when frame i leaves: i/perSecond of attack time, laid out
	// over the attack slots.
	sendAt := func(i int) time.Time {
		a := time.Duration(i) * time.Second / perSecond
		return start.Add((2*(a/slot)+1)*slot + a%slot)
	}
	sendErr := make(chan error, attackers)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < frames; i++ {
				if d := time.Until(sendAt(i)); d > 0 {
					time.Sleep(d)
				}
				if _, err := c.nc.Write(wire[i%len(wire)]); err != nil {
					sendErr <- err
					return
				}
			}
		}()
	}
	sent := make(chan struct{})
	go func() { wg.Wait(); close(sent) }()
	var probes, notReady, notHealthy int
	var firstBad string
	for done := false; !done; {
		select {
		case <-sent:
			done = true
		case <-time.After(250 * time.Millisecond):
		}
		r, hc, hs := probeNode(t, p)
		probes++
		if r != 200 {
			notReady++
		}
		if hc != 200 || hs != "healthy" {
			notHealthy++
		}
		if (r != 200 || hs != "healthy") && firstBad == "" {
			_, firstBad = httpDo(t, "GET", p.httpURL("/api/websocket/health"), "")
		}
	}
	close(sendErr)
	for err := range sendErr {
		t.Fatalf("attacker write: %v", err)
	}
	var after nodeMetrics
	wstest.Eventually(t, 30*time.Second, "every bad frame counted", func() bool {
		getJSON(t, p.httpURL("/api/websocket/metrics"), &after)
		return after.badFrames()-before.badFrames() >= attackers*frames
	})
	elapsed := time.Since(start)
	// The slot after the last attack slot is quiet: finish measuring it.
	if d := time.Until(sendAt(frames - 1).Truncate(0).Add(2 * slot)); d > 0 {
		time.Sleep(d)
	}
	close(stopFeed)
	feedWG.Wait()

	if got := after.badFrames() - before.badFrames(); got != attackers*frames {
		t.Fatalf("client_errors_total counted %d bad frames, want %d (%v)", got, attackers*frames, after.ClientErrors)
	}
	if r, hc, hs := probeNode(t, p); notReady > 0 || notHealthy > 0 || r != 200 || hc != 200 || hs != "healthy" {
		t.Fatalf("during the attack %d/%d probes not ready, %d not healthy (first: %s); after: readyz %d health %d %s",
			notReady, probes, notHealthy, firstBad, r, hc, hs)
	}
	if after.ClientErrors["rate_limited"] != before.ClientErrors["rate_limited"] || after.ErrorBudgetCloses != 0 || after.Throughput.ErrorRate != 0 {
		t.Fatalf("attackers exceeded their allowance or errors leaked into the error rate: %+v", after)
	}
	for i := range closed {
		if closed[i].Load() {
			t.Fatalf("attacker %d was closed", i)
		}
	}
	if after.Connections != attackers+1 {
		t.Fatalf("%d connections, want %d", after.Connections, attackers+1)
	}

	// Prometheus agrees with the JSON counters.
	_, prom := httpDo(t, "GET", p.httpURL("/metrics"), "")
	var promBad uint64
	for _, r := range badFrameReasons {
		promBad += promValue(prom, `wsproxy_client_errors_total{reason="`+r+`"}`)
	}
	if promBad != after.badFrames() {
		t.Fatalf("prometheus counts %d bad frames, metrics %d", promBad, after.badFrames())
	}

	latMu.Lock()
	defer latMu.Unlock()
	qp, ap := p99(quiet), p99(attack)
	t.Logf("%d attackers × %d frames over %s (%d frames/s in attack slots); bystander p99 quiet %s (%d samples), under attack %s (%d samples); %d probes",
		attackers, frames, elapsed.Round(time.Millisecond), attackers*perSecond, qp, len(quiet), ap, len(attack), probes)
	if len(attack) < 100 {
		t.Fatalf("bystander received only %d messages during the attack", len(attack))
	}
	if bound := qp*3/2 + 10*time.Millisecond; ap > bound {
		t.Fatalf("bystander p99 under attack %s above %s (1.5 × quiet %s + 10ms)", ap, bound, qp)
	}
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}

// promValue returns the value of the exposition line starting with series.
func promValue(text, series string) uint64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return uint64(f)
		}
	}
	return 0
}

// TestFortyNonJSONFramesRealBinary is the attack on the shipped
// configuration: once the demo feed has filled the health window, one
// client sends 40 non-JSON frames; health stays healthy and /readyz 200.
func TestFortyNonJSONFramesRealBinary(t *testing.T) {
	p := startProc(t, nil)
	wstest.Eventually(t, 20*time.Second, "window filled", func() bool {
		var st struct {
			Connection struct {
				MessagesForwarded uint64 `json:"messagesForwarded"`
			} `json:"connection"`
		}
		getJSON(t, p.httpURL("/api/websocket/stats"), &st)
		return st.Connection.MessagesForwarded >= 150
	})
	c := wstest.Dial(t, p.url("/ws"))
	c.NextOfType(t, "welcome", 5*time.Second)
	for i := 0; i < 40; i++ {
		c.Send(t, "not json")
	}
	var m nodeMetrics
	wstest.Eventually(t, 10*time.Second, "frames counted", func() bool {
		getJSON(t, p.httpURL("/api/websocket/metrics"), &m)
		return m.ClientErrors["invalid_message"] >= 40
	})
	if r, hc, hs := probeNode(t, p); r != 200 || hc != 200 || hs != "healthy" || m.ClientErrors["invalid_message"] != 40 {
		_, body := httpDo(t, "GET", p.httpURL("/api/websocket/health"), "")
		t.Fatalf("after 40 non-JSON frames: readyz %d, health %d %s (%s), counted %d", r, hc, hs, body, m.ClientErrors["invalid_message"])
	}
}

// TestServerFailuresTurnReadiness: real server-side failures still move
// health and readiness as documented, and a drain still turns /readyz 503.
func TestServerFailuresTurnReadiness(t *testing.T) {
	t.Run("source down past its threshold", func(t *testing.T) {
		p := startProc(t, []string{
			"WSPROXY_SOURCES_DEMO_ENABLED=false",
			"WSPROXY_SOURCES_REDIS_ENABLED=true",
			"WSPROXY_SOURCES_REDIS_ADDR=" + freeAddr(t), // nothing listens there
			"WSPROXY_HEALTH_SOURCE_DOWN_UNHEALTHY_AFTER=1s",
		})
		wstest.Eventually(t, 15*time.Second, "unhealthy", func() bool {
			_, hc, hs := probeNode(t, p)
			return hc == 503 && hs == "unhealthy"
		})
		if code, body := httpDo(t, "GET", p.httpURL("/readyz"), ""); code != 503 || !strings.Contains(body, "no source connected") {
			t.Fatalf("readyz %d %s", code, body)
		}
	})
	t.Run("source down, readiness not tied to sources", func(t *testing.T) {
		p := startProc(t, []string{
			"WSPROXY_SOURCES_DEMO_ENABLED=false",
			"WSPROXY_SOURCES_REDIS_ENABLED=true",
			"WSPROXY_SOURCES_REDIS_ADDR=" + freeAddr(t),
			"WSPROXY_HEALTH_SOURCE_DOWN_UNHEALTHY_AFTER=1s",
			"WSPROXY_HEALTH_READY_REQUIRES_SOURCE=false",
		})
		wstest.Eventually(t, 15*time.Second, "unhealthy", func() bool {
			_, hc, hs := probeNode(t, p)
			return hc == 503 && hs == "unhealthy"
		})
		if code, body := httpDo(t, "GET", p.httpURL("/readyz"), ""); code != 200 {
			t.Fatalf("readyz %d %s", code, body)
		}
	})
	t.Run("memory critical", func(t *testing.T) {
		// A threshold below the idle heap: the monitor measures the process
		// critical at once.
		p := startProc(t, []string{"WSPROXY_MEMORY_THRESHOLD=1048576"})
		wstest.Eventually(t, 15*time.Second, "unhealthy", func() bool {
			_, hc, hs := probeNode(t, p)
			return hc == 503 && hs == "unhealthy"
		})
		code, body := httpDo(t, "GET", p.httpURL("/readyz"), "")
		if code != 503 || !strings.Contains(body, "memory level critical") {
			t.Fatalf("readyz %d %s", code, body)
		}
		_, h := httpDo(t, "GET", p.httpURL("/api/websocket/health"), "")
		if !strings.Contains(h, "memory level critical") {
			t.Fatalf("health %s", h)
		}
	})
	t.Run("drain", func(t *testing.T) {
		p := startProc(t, nil)
		if r, _, _ := probeNode(t, p); r != 200 {
			t.Fatalf("readyz before the drain: %d", r)
		}
		if code, body := httpDo(t, "POST", p.httpURL("/api/websocket/drain?window=0s"), ""); code != 200 {
			t.Fatalf("drain %d %s", code, body)
		}
		code, body := httpDo(t, "GET", p.httpURL("/readyz"), "")
		if code != 503 || !bytes.Contains([]byte(body), []byte("draining")) {
			t.Fatalf("readyz while draining %d %s", code, body)
		}
	})
}
