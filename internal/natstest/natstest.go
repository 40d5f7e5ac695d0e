// Package natstest gives tests a private nats-server with JetStream: its own
// process on a free port with its store in a temporary directory, so that a
// test may kill it (SIGKILL), restart it on the same store, or cut its
// clients off through a relay. Tests never use a system-wide NATS server.
package natstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is a private nats-server process (JetStream on, file store in a
// temporary directory that survives restarts). Methods are called from the
// test goroutine.
type Server struct {
	// URL is nats://127.0.0.1:<port>; it stays the same across restarts.
	URL  string
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

// Start runs a private `nats-server -js` on a free port. The test is
// skipped, loudly, when nats-server is not installed (scripts/test.sh
// installs Debian's package).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := serverBinary()
	if bin == "" {
		t.Skip("SKIPPED: nats-server is not installed; scripts/test.sh installs it — this test needs its own NATS server")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{URL: "nats://127.0.0.1:" + strconv.Itoa(port), bin: bin, port: port, dir: t.TempDir()}
	s.start(t)
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("nats-server log:\n%s", s.log())
		}
	})
	return s
}

// serverBinary finds nats-server on PATH or where Debian installs it
// (/usr/sbin, not on every user's PATH); "" when it is not installed.
func serverBinary() string {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server"
	}
	return ""
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.port),
		"-sd", filepath.Join(s.dir, "store"), "-l", filepath.Join(s.dir, "nats.log"))
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server on %s not ready: %v\n%s", s.URL, err, s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ready reports whether the server answers JetStream API requests.
func (s *Server) ready() error {
	nc, err := nats.Connect(s.URL, nats.Timeout(500*time.Millisecond), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

func (s *Server) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "nats.log"))
	return string(b)
}

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	s.cmd = nil
}

// Kill9 kills the server with SIGKILL (no shutdown of any kind) and waits
// for the process to be gone.
func (s *Server) Kill9(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		t.Fatal("natstest: Kill9 of a server that is not running")
	}
	s.kill()
}

// Restart starts the server again on the same port and store.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t)
}

// Conn returns a client of the server that reconnects across restarts,
// closed at the end of the test.
func (s *Server) Conn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatalf("connect %s: %v", s.URL, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new Conn.
func (s *Server) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(s.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// CreateStream creates a file-backed stream.
func CreateStream(t testing.TB, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatalf("create stream %s: %v", cfg.Name, err)
	}
	return st
}

// Publish publishes body to subj on JetStream, retrying (with one message
// ID, so that the server stores it once) until it is acknowledged or the
// deadline passes; it rides out a server restart. It returns the stream
// sequence.
func Publish(t testing.TB, js jetstream.JetStream, subj, id string, body []byte) uint64 {
	t.Helper()
	seq, err := TryPublish(js, subj, id, body, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// TryPublish is Publish for goroutines other than the test's: it returns
// the error instead of failing the test.
func TryPublish(js jetstream.JetStream, subj, id string, body []byte, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ack, err := js.Publish(ctx, subj, body, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return ack.Sequence, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("natstest: publish %s to %s: %w", id, subj, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Relay is a TCP relay in front of a server, so that a test can cut every
// client connection at once (a network cut) while the server keeps running.
type Relay struct {
	// URL is the relay's nats:// address.
	URL    string
	target string
	ln     net.Listener

	mu      sync.Mutex
	flowing *sync.Cond // signalled when stalled turns false
	conns   []net.Conn
	down    bool
	stalled bool
}

// NewRelay listens on a free port and forwards every connection to target
// (host:port or nats://host:port). It is closed at the end of the test.
func NewRelay(t testing.TB, target string) *Relay {
	t.Helper()
	if u, ok := cutScheme(target); ok {
		target = u
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{URL: "nats://" + ln.Addr().String(), target: target, ln: ln}
	r.flowing = sync.NewCond(&r.mu)
	go r.accept()
	t.Cleanup(func() { _ = ln.Close(); r.Stall(false); r.Cut() })
	return r
}

func cutScheme(u string) (string, bool) {
	const p = "nats://"
	if len(u) > len(p) && u[:len(p)] == p {
		return u[len(p):], true
	}
	return u, false
}

func (r *Relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		down := r.down
		r.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", r.target, 2*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, up)
		r.mu.Unlock()
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

func (r *Relay) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			for r.stalled {
				r.flowing.Wait()
			}
			r.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break // a cut or a closed peer
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// Stall(true) stops forwarding bytes without closing anything: a network
// that silently loses every packet, which only timeouts can tell. Stall(false)
// forwards again what was held.
func (r *Relay) Stall(on bool) {
	r.mu.Lock()
	r.stalled = on
	r.mu.Unlock()
	if !on {
		r.flowing.Broadcast()
	}
}

// SetDown(true) makes the relay close every new connection at once (the
// network stays cut); SetDown(false) relays again.
func (r *Relay) SetDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// Cut closes every connection relayed so far; new connections are still
// accepted unless the relay is down.
func (r *Relay) Cut() int {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns) / 2
}
