package loadtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCPUGroupCapsAndCleansUp creates a capped group, moves a process into
// it, reads the quota back from the kernel, and checks that Remove leaves
// nothing behind while the process lives on in the root group.
func TestCPUGroupCapsAndCleansUp(t *testing.T) {
	if _, err := os.Stat(filepath.Join(CPUGroupRoot, "cpu.cfs_quota_us")); err != nil {
		t.Skipf("LOUD SKIP: no cgroup v1 cpu controller at %s: %v", CPUGroupRoot, err)
	}
	name := fmt.Sprintf("wsload-test-%d", os.Getpid())
	g, err := NewCPUGroup(name, 0.25, 10*time.Millisecond)
	if err != nil {
		t.Skipf("LOUD SKIP: %v", err)
	}
	t.Cleanup(func() { _ = g.Remove() })
	if q, err := g.Quota(); err != nil || q != 0.25 {
		t.Fatalf("quota %v cores (%v), want 0.25", q, err)
	}
	if b, err := os.ReadFile(g.Dir + "/cpu.cfs_period_us"); err != nil || strings.TrimSpace(string(b)) != "10000" {
		t.Fatalf("cpu.cfs_period_us %q (%v), want 10000", b, err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(g.Dir, "cgroup.procs"))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(cmd.Process.Pid) {
		t.Fatalf("group holds %q (%v), want pid %d", b, err, cmd.Process.Pid)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Dir); !os.IsNotExist(err) {
		t.Fatalf("group %s still there after Remove: %v", g.Dir, err)
	}
	if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatalf("process gone after Remove: %v", err)
	}
	if _, err := NewCPUGroup(name+"-zero", 0, DefaultCPUPeriod); err == nil {
		t.Fatal("a zero quota was accepted")
	}
	if _, err := NewCPUGroup(name+"-tiny", 0.05, 10*time.Millisecond); err == nil {
		t.Fatal("a quota under 1 ms was accepted")
	}
}
