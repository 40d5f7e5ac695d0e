package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSIGTERMAtScaleUnderSaturation: thousands of clients on a demo feed fast
// enough to saturate the machine (the dispatcher backlogged, queues full);
// on SIGTERM the process stops intake, bounds the backlog drain, closes every
// client with 1001 and exits within shutdown_timeout. The server is the
// plain (non-race) binary and the clients run in their own plain process
// (tools/closecount), so that they keep up with their sockets even beside
// the race-detector suite. Every 10th client stops reading for 8 s, from 3 s
// before SIGTERM to past the drain and close_grace: pings and then the close
// frame wait in its socket buffers, and its late pongs must not meet a
// closed socket whose reset would destroy the 1001 it has not read yet.
// E2E_SCALE_CLIENTS sets the client count (default 5,000).
func TestSIGTERMAtScaleUnderSaturation(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("E2E_SCALE_CLIENTS")); err == nil && v > 0 {
		n = v
	}
	// A long grace with a short drain share: the clients get time to answer
	// on a busy machine (the exit comes as soon as every client has), and
	// the server closes early enough that a server closing the socket
	// close_grace after its close frame would meet the stalled clients'
	// late pongs.
	const grace = 40 * time.Second
	p := startProcBin(t, plainBinary(t), []string{
		"WSPROXY_MAX_CONNECTIONS=" + strconv.Itoa(n+1000),
		"WSPROXY_SOURCES_DEMO_INTERVAL=20ms",
		"WSPROXY_SHUTDOWN_TIMEOUT=" + grace.String(),
		"WSPROXY_LIMITS_CONNECT_RATE=0",
		"WSPROXY_LOG_LEVEL=warn",
		"WSPROXY_HEARTBEAT_INTERVAL=1s", // pings in a stalled client's backlog
		"WSPROXY_SHUTDOWN_DRAIN_SHARE=0.05",
	})
	cc := startCloseCount(t, p.url("/ws"), n)

	var st struct {
		Dataflow struct {
			Dropped uint64 `json:"dropped"`
			Queued  int    `json:"queued"`
		} `json:"dataflow"`
		Pool struct {
			Queued int64             `json:"queuedMessages"`
			Shed   map[string]uint64 `json:"shed"`
		} `json:"pool"`
	}
	getJSON(t, p.httpURL("/api/websocket/stats"), &st)

	start := time.Now()
	if err := p.stop(t, grace+10*time.Second); err != nil {
		t.Fatalf("exit status: %v\n%s", err, p.Logs())
	}
	took := time.Since(start)
	r := cc.report(t)
	t.Logf("%d clients; before SIGTERM: dispatcher backlog %d, dropped %d, frames queued %d, shed %v; exit %s after SIGTERM (grace %s); clients: %+v",
		n, st.Dataflow.Queued, st.Dataflow.Dropped, st.Pool.Queued, st.Pool.Shed, took.Round(time.Millisecond), grace, r)
	if logs := p.Logs(); logs != "" {
		t.Logf("wsproxy logs:\n%s", logs)
	}
	if took > grace {
		t.Errorf("exit took %s, shutdown_timeout %s", took, grace)
	}
	if got := r.Codes["1001"]; got != n || r.Clients != n {
		t.Errorf("%d of %d clients received 1001 (codes %v, %d errors, %d unfinished); first error: %s",
			got, n, r.Codes, r.Errors, r.Unfinished, r.First)
	}
}

// closeCount is a running tools/closecount process holding n clients.
type closeCount struct {
	cmd  *exec.Cmd
	out  *bufio.Scanner
	errs strings.Builder
}

// closeCountReport is closecount's final JSON line.
type closeCountReport struct {
	Clients    int            `json:"clients"`
	Codes      map[string]int `json:"codes"`
	Errors     int            `json:"errors"`
	Unfinished int            `json:"unfinished"`
	First      string         `json:"first"`
	EndedInMs  int64          `json:"endedInMs"`
}

// startCloseCount builds closecount without the race detector, starts it
// with n clients on url and returns once every client is being fed.
func startCloseCount(t *testing.T, url string, n int) *closeCount {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "closecount")
	if out, err := exec.Command("go", "build", "-o", bin, "../tools/closecount").CombinedOutput(); err != nil {
		t.Fatalf("build closecount: %v\n%s", err, out)
	}
	cc := &closeCount{cmd: exec.Command(bin, "-url", url, "-n", strconv.Itoa(n), "-stall-every", "10", "-stall", "8s", "-stall-lead", "3s")}
	cc.cmd.Stderr = &cc.errs
	stdout, err := cc.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.cmd.Process.Kill()
		_ = cc.cmd.Wait()
	})
	cc.out = bufio.NewScanner(stdout)
	// closecount bounds its own wait for readiness (-ready-wait).
	if !cc.out.Scan() || cc.out.Text() != "ready" {
		t.Fatalf("closecount did not get ready: %q %v\n%s", cc.out.Text(), cc.out.Err(), cc.errs.String())
	}
	return cc
}

// report waits for closecount's report (it ends once every connection has
// ended, or its -wait after the first end).
func (cc *closeCount) report(t *testing.T) closeCountReport {
	t.Helper()
	var r closeCountReport
	if !cc.out.Scan() {
		t.Fatalf("closecount ended without a report: %v\n%s", cc.out.Err(), cc.errs.String())
	}
	if err := json.Unmarshal(cc.out.Bytes(), &r); err != nil {
		t.Fatalf("closecount report %q: %v", cc.out.Text(), err)
	}
	return r
}
