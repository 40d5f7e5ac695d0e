package loadtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPUGroupRoot is where cgroup v1's cpu controller is mounted.
var CPUGroupRoot = "/sys/fs/cgroup/cpu"

// DefaultCPUPeriod is the CFS period a quota is a share of unless another
// is asked for: the kernel's default.
const DefaultCPUPeriod = 100 * time.Millisecond

// CPUGroup is a cgroup v1 cpu group whose processes together get at most
// a fixed share of one core (cpu.cfs_quota_us per cpu.cfs_period_us), so
// that several server nodes on one box each get the same capped CPU.
type CPUGroup struct {
	Dir string
}

// NewCPUGroup creates the group name under CPUGroupRoot capped at cores
// per period (0.25 and 100 ms: 25 ms of CPU per 100 ms). Within one period
// the group may use several cores until its quota is spent: a period longer
// than the work of one burst (one message fanned out to every connection)
// does not cap that burst at all, only the average, so a short period is
// what makes the group behave like a node of that many cores.
func NewCPUGroup(name string, cores float64, period time.Duration) (*CPUGroup, error) {
	if cores <= 0 {
		return nil, errors.New("loadtest: CPU quota must be > 0 cores")
	}
	if period < time.Millisecond || period > time.Second {
		return nil, fmt.Errorf("loadtest: CPU period %v: the kernel takes 1 ms to 1 s", period)
	}
	periodUS := int(period / time.Microsecond)
	dir := filepath.Join(CPUGroupRoot, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("loadtest: cgroup: %w (cgroup v1's cpu controller must be mounted and writable at %s)", err, CPUGroupRoot)
	}
	g := &CPUGroup{Dir: dir}
	quota := int(cores * float64(periodUS))
	if quota < 1000 {
		_ = g.Remove()
		return nil, fmt.Errorf("loadtest: %.3f cores of a %v period is under the kernel's 1 ms smallest quota", cores, period)
	}
	if err := g.write("cpu.cfs_period_us", strconv.Itoa(periodUS)); err != nil {
		_ = g.Remove()
		return nil, err
	}
	if err := g.write("cpu.cfs_quota_us", strconv.Itoa(quota)); err != nil {
		_ = g.Remove()
		return nil, err
	}
	return g, nil
}

func (g *CPUGroup) write(file, v string) error {
	if err := os.WriteFile(filepath.Join(g.Dir, file), []byte(v), 0o644); err != nil {
		return fmt.Errorf("loadtest: cgroup %s: %w", file, err)
	}
	return nil
}

// Add moves the process pid, all its threads, into the group.
func (g *CPUGroup) Add(pid int) error { return g.write("cgroup.procs", strconv.Itoa(pid)) }

// Quota returns the group's quota in cores, read back from the kernel.
func (g *CPUGroup) Quota() (float64, error) {
	q, err := os.ReadFile(filepath.Join(g.Dir, "cpu.cfs_quota_us"))
	if err != nil {
		return 0, err
	}
	p, err := os.ReadFile(filepath.Join(g.Dir, "cpu.cfs_period_us"))
	if err != nil {
		return 0, err
	}
	qv, err1 := strconv.ParseFloat(strings.TrimSpace(string(q)), 64)
	pv, err2 := strconv.ParseFloat(strings.TrimSpace(string(p)), 64)
	if err1 != nil || err2 != nil || pv == 0 {
		return 0, fmt.Errorf("loadtest: cgroup quota %q / %q", q, p)
	}
	return qv / pv, nil
}

// Remove moves any process still in the group to the root group and
// deletes the group.
func (g *CPUGroup) Remove() error {
	if b, err := os.ReadFile(filepath.Join(g.Dir, "cgroup.procs")); err == nil {
		for _, pid := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(CPUGroupRoot, "cgroup.procs"), []byte(pid), 0o644)
		}
	}
	if err := os.Remove(g.Dir); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("loadtest: remove cgroup: %w", err)
	}
	return nil
}
