package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"wsproxy/internal/leakcheck"
)

// binary is the wsproxy executable built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsproxy-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "wsproxy")
	build := exec.Command("go", "build", "-race", "-o", binary, "wsproxy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		// The tests' own goroutines (clients, log readers) must be gone.
		if leaked := leakcheck.Leaked(10 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running wsproxy process.
type proc struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	logs strings.Builder
	done chan error
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProc runs the binary with args and env (WSPROXY_LISTEN is set) from
// the repository root, so that the shipped config.yaml applies, and waits
// until it accepts connections.
func startProc(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	return startProcBin(t, binary, env, args...)
}

// startProcBin is startProc with another executable (plainBinary, say).
func startProcBin(t testing.TB, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{addr: freeAddr(t), done: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = ".."
	p.cmd.Env = append(append(os.Environ(), "WSPROXY_LISTEN="+p.addr), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("wsproxy logs:\n%s", p.Logs())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("wsproxy exited at start: %v\n%s", err, p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("wsproxy not listening on %s:\n%s", p.addr, p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *proc) url(path string) string { return "ws://" + p.addr + path }

// stop sends SIGTERM and waits for the exit within timeout.
func (p *proc) stop(t testing.TB, timeout time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		t.Fatalf("wsproxy did not exit within %s after SIGTERM", timeout)
	}
	return nil
}
