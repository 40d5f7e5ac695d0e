package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wsproxy/internal/wstest"
)

// runBin runs the binary to completion with env added, from the repository
// root, and returns its stdout, stderr and exit code.
func runBin(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v did not finish", args)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestCheckConfigPrintsEffectiveConfig(t *testing.T) {
	out, errOut, code := runBin(t, []string{"WSPROXY_ADMIN_TOKEN=very-secret-admin", "WSPROXY_MAX_CONNECTIONS=1234"}, "check-config")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"# file: config.yaml", "# environment overrides: WSPROXY_ADMIN_TOKEN, WSPROXY_MAX_CONNECTIONS",
		"max_connections: 1234 # from WSPROXY_MAX_CONNECTIONS",
		`token: "********" # from WSPROXY_ADMIN_TOKEN`,
		"  drain_window: 30s\n", "  ui: true\n", "  latency_unhealthy: 30ms\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "very-secret-admin") {
		t.Fatalf("check-config shows the admin token:\n%s", out)
	}

	// Defaults only: keys absent from any file are printed with defaults.
	out, errOut, code = runBin(t, nil, "check-config", "-config", "")
	if code != 0 || !strings.Contains(out, "(none: defaults and environment only)") || !strings.Contains(out, "heartbeat_interval: 30s") {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
}

func TestCheckConfigNamesTheBadKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, env, want string }{
		{"unknown key", "listen: \":1\"\nqueue:\n  max_mesages: 5\n", "", "max_mesages"},
		{"type error", "queue:\n  max_bytes: lots\n", "", "queue.max_bytes"},
		{"invalid value", "log:\n  format: xml\n", "", "log.format"},
		{"bad env value", "", "WSPROXY_HEARTBEAT_INTERVAL=often", "WSPROXY_HEARTBEAT_INTERVAL"},
		{"env names no key", "", "WSPROXY_" + "UPSTREM_URL=http://127.0.0.1:1", "WSPROXY_" + "UPSTREM_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			_, errOut, code := runBin(t, env, "check-config", "-config", path)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q: want 2 naming %s", code, errOut, tc.want)
			}
		})
	}
}

// A misspelt override stops the server at start, naming the variable.
func TestUnknownEnvStopsTheServer(t *testing.T) {
	typo := "WSPROXY_" + "UPSTREM_URL"
	_, errOut, code := runBin(t, []string{typo + "=http://127.0.0.1:1", "WSPROXY_LISTEN=" + freeAddr(t)})
	if code == 0 || !strings.Contains(errOut, typo) {
		t.Fatalf("exit %d, stderr %q: want a failure naming %s", code, errOut, typo)
	}
}

func TestVersion(t *testing.T) {
	out, errOut, code := runBin(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "wsproxy ") || !strings.Contains(out, "go1.") {
		t.Fatalf("exit %d: %q %q", code, out, errOut)
	}
}

// healthcheck and drain reach the node of their configuration over
// loopback, as the container's HEALTHCHECK and the Kubernetes preStop hook
// run them.
func TestHealthcheckAndDrainSubcommands(t *testing.T) {
	adminAddr := freeAddr(t)
	const token = "ops-token"
	env := []string{"WSPROXY_ADMIN_LISTEN=" + adminAddr, "WSPROXY_ADMIN_TOKEN=" + token}
	p := startProc(t, env)
	env = append(env, "WSPROXY_LISTEN="+p.addr)
	wstest.Eventually(t, 10*time.Second, "admin listener", func() bool {
		code, _ := tryGet("http://" + adminAddr + "/livez")
		return code == 200
	})
	out, errOut, code := runBin(t, env, "healthcheck", "-path", "/livez")
	if code != 0 || !strings.Contains(out, `"alive"`) {
		t.Fatalf("healthcheck: exit %d %q %q", code, out, errOut)
	}
	c := wstest.Dial(t, p.url("/ws"))
	c.NextOfType(t, "welcome", 5*time.Second)
	// Without the token the drain is refused (the node keeps serving).
	if _, errOut, code := runBin(t, append(env[:1:1], "WSPROXY_LISTEN="+p.addr, "WSPROXY_ADMIN_TOKEN=wrong"), "drain", "-window", "300ms"); code != 1 || !strings.Contains(errOut, "401") {
		t.Fatalf("drain with a wrong token: exit %d %q", code, errOut)
	}
	out, errOut, code = runBin(t, env, "drain", "-window", "300ms", "-wait")
	if code != 0 || !strings.Contains(out, "drain started: 1 connections") || !strings.Contains(out, "drain complete") {
		t.Fatalf("drain: exit %d %q %q", code, out, errOut)
	}
	if cl, _ := c.WaitClose(t, 5*time.Second); cl.Code != websocket.CloseGoingAway {
		t.Fatalf("drained client: %+v", cl)
	}
	if _, _, code := runBin(t, env, "healthcheck", "-path", "/readyz"); code != 1 {
		t.Fatalf("healthcheck /readyz after the drain: exit %d, want 1", code)
	}
	if err := p.stop(t, 20*time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, _, code := runBin(t, env, "healthcheck"); code != 1 {
		t.Fatalf("healthcheck of a stopped node: exit %d, want 1", code)
	}
}
