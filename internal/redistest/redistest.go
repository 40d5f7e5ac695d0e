// Package redistest gives tests a real Redis: the shared server of the test
// command (REDIS_ADDR) with a unique key prefix per test, or a private
// redis-server process that a test may kill, restart or cut off.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Addr returns the shared Redis address (REDIS_ADDR, default
// 127.0.0.1:6379), failing the test when it does not answer.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s (REDIS_ADDR) does not answer: %v; run the tests with scripts/test.sh", addr, err)
	}
	return addr
}

// Prefix returns a random key/channel prefix, so that concurrent test
// packages sharing one Redis never see each other's data.
func Prefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b) + ":"
}

// Client returns a client of addr closed at the end of the test.
func Client(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Server is a private redis-server process with its data in a temporary
// directory. It persists every write (appendonly, fsync always), so that a
// restart keeps the data.
type Server struct {
	Addr string
	dir  string
	cmd  *exec.Cmd
}

// Start runs a private redis-server on a free port. The test is skipped,
// loudly, when redis-server is not installed (scripts/test.sh installs it).
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("SKIPPED: redis-server is not installed; scripts/test.sh installs it — this test needs its own Redis")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{Addr: addr, dir: t.TempDir()}
	s.start(t)
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	s.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port,
		"--dir", s.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--logfile", filepath.Join(s.dir, "redis.log"))
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s not ready: %v\n%s", s.Addr, err, s.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Kill9 kills the server with SIGKILL and waits for the process to exit:
// what it acknowledged is on disk (appendfsync always), nothing else is.
func (s *Server) Kill9(t testing.TB) {
	t.Helper()
	s.kill()
	s.cmd = nil
}

// Stop shuts the server down (its data is already on disk) and waits for
// the process to exit.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	_ = c.Shutdown(context.Background()).Err() // the connection drops: an error is expected
	c.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Fatalf("redis-server did not stop:\n%s", s.log())
	}
	s.cmd = nil
}

// Restart starts the server again on the same port and data directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t)
}

// KillClients closes every connection of the given CLIENT LIST type
// ("normal", "pubsub") except the caller's, and returns how many.
func (s *Server) KillClients(t testing.TB, typ string) int {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	n, err := c.ClientKillByFilter(context.Background(), "TYPE", typ, "SKIPME", "yes").Result()
	if err != nil {
		t.Fatalf("CLIENT KILL TYPE %s: %v", typ, err)
	}
	return int(n)
}
