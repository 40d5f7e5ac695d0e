package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsproxy/tools/loadtest"
)

// TestLoadToolFloorRatios runs the load tool (tools/wsload) at CI size
// against its floor server (tools/floorhub) and a wsproxy process, two
// alternating rounds, and checks what it reports: every connection of every
// round established and served without loss by both targets, each wsproxy
// round carrying its ratios to the floor of the same round, the table
// printing a wsproxy/floor column and the box load. It asserts no speed.
func TestLoadToolFloorRatios(t *testing.T) {
	if testing.Short() {
		t.Skip("load tool run skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skipf("LOUD SKIP: %v: the load tool needs a private redis-server (scripts/test.sh installs it)", err)
	}
	dir := t.TempDir()
	wsload := filepath.Join(dir, "wsload")
	if out, err := exec.Command("go", "build", "-o", wsload, "wsproxy/tools/wsload").CombinedOutput(); err != nil {
		t.Fatalf("build wsload: %v\n%s", err, out)
	}
	report := filepath.Join(dir, "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, wsload, "-targets", "floor,wsproxy", "-repeat", "2",
		"-conns", "200", "-rate", "10", "-duration", "2s", "-idle", "500ms", "-drain", "15s",
		"-wsproxy-cmd", plainBinary(t)+" -config=",
		"-wsproxy-env", "WSPROXY_SOURCES_REDIS_ENABLED=true,WSPROXY_SOURCES_REDIS_ADDR={redis}",
		"-progress=false", "-json", report)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("wsload: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var reps []loadtest.Report
	if err := json.Unmarshal(b, &reps); err != nil {
		t.Fatal(err)
	}
	want := []string{"floor", "wsproxy", "floor", "wsproxy"}
	if len(reps) != len(want) {
		t.Fatalf("%d reports, want %d (%v)", len(reps), len(want), want)
	}
	for i, r := range reps {
		if r.Name != want[i] {
			t.Fatalf("report %d is %q, want %q: rounds do not alternate", i, r.Name, want[i])
		}
		if r.Established != 200 || r.Failed != 0 || r.Published != 20 || r.Lost != 0 || r.Received != r.Expected || r.Expected != 4000 {
			t.Fatalf("%s round %d: established %d failed %d published %d received %d of %d (%v)",
				r.Name, i/2+1, r.Established, r.Failed, r.Published, r.Received, r.Expected, r.Errors)
		}
		if r.Name == loadtest.FloorTarget {
			if len(r.VsFloor) != 0 {
				t.Fatalf("floor round %d has ratios to itself: %v", i/2+1, r.VsFloor)
			}
			continue
		}
		for _, k := range []string{"p50 ms", "p99 ms", "max ms", "server CPU µs/msg", "KB/conn (idle-base)", "delivered msg/s"} {
			v, ok := r.VsFloor[k]
			if !ok || v <= 0 || math.IsInf(v, 0) {
				t.Fatalf("wsproxy round %d: ratio %q to the floor = %v (present %v); all: %v", i/2+1, k, v, ok, r.VsFloor)
			}
		}
		if got := r.VsFloor["received"]; got != 1 {
			t.Fatalf("wsproxy round %d: received ratio %v, want 1 (both delivered everything)", i/2+1, got)
		}
		if _, ok := r.VsFloor["loss %"]; ok {
			t.Fatalf("wsproxy round %d: a loss ratio against the floor's 0 loss: %v", i/2+1, r.VsFloor)
		}
		if want := reps[i-1].Latency.P99; math.Abs(r.VsFloor["p99 ms"]*want-r.Latency.P99) > 1e-6*r.Latency.P99 {
			t.Fatalf("wsproxy round %d: p99 ratio %v is not %v / %v (the same round's floor)", i/2+1, r.VsFloor["p99 ms"], r.Latency.P99, want)
		}
	}
	out := stdout.String()
	for _, s := range []string{"wsproxy/floor", "load avg start (1m)", "wsproxy/floor round 2:"} {
		if !strings.Contains(out, s) {
			t.Fatalf("table lacks %q:\n%s", s, out)
		}
	}
	if !strings.Contains(stderr.String(), "floor start, load average") {
		t.Fatalf("no box load printed around the rounds:\n%s", stderr.String())
	}
}
