package config_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"wsproxy/config"
)

// The set of environment names is derived from the config structs: nested
// sections, pointers and lists are all there, and nothing else is.
func TestEnvNamesWalkTheConfigStructs(t *testing.T) {
	names := config.EnvNames()
	for _, want := range []string{
		"WSPROXY_LISTEN", "WSPROXY_DEMO_PAGE", "WSPROXY_QUEUE_MAX_BYTES",
		"WSPROXY_SOURCES_STREAMS_KEYS", "WSPROXY_SOURCES_REDIS_SHARDED_ADDRS",
		"WSPROXY_AUTH_JWT_SECRET", "WSPROXY_ADMIN_UI", "WSPROXY_HEALTH_SOURCE_DOWN_UNHEALTHY_AFTER",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
	for _, n := range names {
		if n == config.EnvPrefix+"_SOURCES" || n == config.EnvPrefix+"_AUTH_JWT" || n == config.EnvPrefix+"_QUEUE" {
			t.Errorf("EnvNames lists the section %s as a key", n)
		}
	}
}

func TestCheckEnvNamesUnknownVariables(t *testing.T) {
	typo := "WSPROXY_" + "UPSTREM_URL" // spelled apart so that the repository scan below does not see it
	err := config.CheckEnv([]string{"WSPROXY_LISTEN=:1", typo + "=http://x", "HOME=/root", "WSPROXY_SOAK=1s"})
	if err == nil || !strings.Contains(err.Error(), typo) {
		t.Fatalf("CheckEnv = %v, want an error naming %s", err, typo)
	}
	if strings.Contains(err.Error(), "WSPROXY_SOAK") || strings.Contains(err.Error(), "WSPROXY_LISTEN=") {
		t.Fatalf("CheckEnv named a known variable: %v", err)
	}
	if err := config.CheckEnv([]string{"WSPROXY_LISTEN=:1", "WSPROXY_DEBUG_PPROF=127.0.0.1:0", "PATH=/bin"}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigRefusesUnknownEnv(t *testing.T) {
	typo := "WSPROXY_" + "MAX_CONECTIONS"
	t.Setenv(typo, "5")
	_, err := config.Load("")
	if err == nil || !strings.Contains(err.Error(), typo) {
		t.Fatalf("LoadConfig = %v, want an error naming %s", err, typo)
	}
}

// Every WSPROXY_* name the repository mentions (tests, Makefile, scripts,
// docs, deployment files) is a configuration key or a documented NonKeyEnv
// entry; otherwise running that test or following that doc would stop the
// process at start.
func TestRepositoryEnvNamesAreKeysOrExcluded(t *testing.T) {
	known := map[string]bool{}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	for n := range config.NonKeyEnv {
		if known[n] {
			t.Errorf("NonKeyEnv lists %s, which is a configuration key", n)
		}
		known[n] = true
	}
	re := regexp.MustCompile(`WSPROXY_[A-Z0-9_]*[A-Z0-9]_?`)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".sh", ".yaml", ".yml", ".json", ".html", ".js":
		default:
			if base := d.Name(); base != "Makefile" && base != "Dockerfile" {
				return nil
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range re.FindAllString(string(b), -1) {
			seen++
			if strings.HasSuffix(n, "_") { // a prefix, as in <prefix>_SOURCES_REDIS_*
				if !slices.ContainsFunc(config.EnvNames(), func(k string) bool { return strings.HasPrefix(k, n) }) {
					t.Errorf("%s: %s* matches no configuration key", path, n)
				}
				continue
			}
			if !known[n] {
				t.Errorf("%s: %s is neither a configuration key nor listed in config.NonKeyEnv", path, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 20 {
		t.Fatalf("found only %d WSPROXY_ mentions: the scan is broken", seen)
	}
	for n := range config.NonKeyEnv {
		if !strings.Contains(string(readme), n) {
			t.Errorf("README.md does not document %s (a WSPROXY_ variable that is not a key)", n)
		}
	}
}

func TestEffectiveYAMLMasksAndMarks(t *testing.T) {
	t.Setenv("WSPROXY_ADMIN_TOKEN", "s3cret-admin")
	t.Setenv("WSPROXY_CLUSTER_REDIS_ADDR", "redis://user:pw-in-url@127.0.0.1:6379")
	t.Setenv("WSPROXY_AUTH_TOKENS", "tok-one,tok-two")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	out, err := config.EffectiveYAML(cfg, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, secret := range []string{"s3cret-admin", "pw-in-url", "tok-one", "tok-two"} {
		if strings.Contains(s, secret) {
			t.Errorf("effective config shows %q:\n%s", secret, s)
		}
	}
	for _, want := range []string{
		`token: "********" # from WSPROXY_ADMIN_TOKEN`,
		`redis_addr: "redis://user:********@127.0.0.1:6379" # from WSPROXY_CLUSTER_REDIS_ADDR`,
		"heartbeat_interval: 30s\n", "max_connections: 10000\n", "  drain_window: 30s\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("effective config lacks %q:\n%s", want, s)
		}
	}
	// The printout is itself a valid configuration equal to the effective one
	// (secrets aside).
	back, err := config.Parse(out)
	if err != nil {
		t.Fatalf("printout does not parse: %v\n%s", err, s)
	}
	back.ApplyDefaults()
	if back.HeartbeatInterval != cfg.HeartbeatInterval || back.MaxConnections != cfg.MaxConnections || back.Listen != cfg.Listen {
		t.Fatalf("printout differs: %+v", back)
	}
}

func TestParseConfigNamesTheKeyOfATypeError(t *testing.T) {
	_, err := config.Parse([]byte("listen: \":1\"\nqueue:\n  max_bytes: lots\n"))
	if err == nil || !strings.Contains(err.Error(), "queue.max_bytes") {
		t.Fatalf("ParseConfig = %v, want the key queue.max_bytes named", err)
	}
}
