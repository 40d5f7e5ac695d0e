package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary is the wsproxy executable, built once from the repository root.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsproxy-deploy")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "wsproxy")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build wsproxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
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

type proc struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	logs bytes.Buffer
}

func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// startProc runs bin from the repository root (the shipped config.yaml
// applies) with env added and WSPROXY_LISTEN set, until it serves /livez.
func startProc(t *testing.T, bin string, env ...string) *proc {
	t.Helper()
	p := &proc{addr: freeAddr(t)}
	p.cmd = exec.Command(bin)
	p.cmd.Dir = ".."
	p.cmd.Env = append(append(os.Environ(), "WSPROXY_LISTEN="+p.addr), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		close(done)
	}()
	exited := make(chan error, 1)
	go func() { <-done; exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("wsproxy logs:\n%s", p.Logs())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _, err := get("http://" + p.addr + "/livez"); err == nil && code == 200 {
			return p
		}
		select {
		case err := <-exited:
			t.Fatalf("wsproxy exited at start: %v\n%s", err, p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("wsproxy not serving on %s:\n%s", p.addr, p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// runEnv runs bin with args from the repository root, with exactly env, to
// completion and returns stdout, stderr and the exit code.
func runEnv(t *testing.T, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = ".."
	cmd.Env = env
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return out.String(), errb.String(), 0
}
