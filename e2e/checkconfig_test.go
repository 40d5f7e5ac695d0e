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
