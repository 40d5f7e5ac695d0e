package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Server is a server process started for a run.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.logs.Len() < 1<<20 {
		w.s.logs.Write(b)
	}
	return len(b), nil
}

// FreeAddr returns a free loopback address.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartServer runs argv with env, then waits until addr accepts connections.
func StartServer(addr string, env []string, argv ...string) (*Server, error) {
	s := &Server{Addr: addr, done: make(chan struct{})}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = lockedWriter{s}, lockedWriter{s}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start %s: %w", argv[0], err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("loadtest: %s exited at start:\n%s", argv[0], s.Logs())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("loadtest: %s not listening on %s:\n%s", argv[0], addr, s.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID returns the process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Logs returns what the process printed (first MiB).
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Stop sends SIGTERM, then SIGKILL after 15 s.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// ErrNoRedisServer is returned by StartRedis when redis-server is not
// installed.
var ErrNoRedisServer = errors.New("loadtest: redis-server not found")

// StartRedis runs a private redis-server on a free port in dir, with no
// persistence and no Pub/Sub output-buffer limit (so that a saturated
// subscriber is measured, not disconnected), so that load runs neither
// disturb nor are disturbed by other users of a shared Redis.
func StartRedis(dir string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	return StartServer(addr, nil, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", filepath.Clean(dir), "--client-output-buffer-limit", "pubsub 0 0 0", "--maxclients", "1000")
}
