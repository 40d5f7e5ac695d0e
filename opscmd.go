package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"wsproxy/config"
)

// adminBase is the loopback URL of this node's admin API: admin.listen
// when set, listen otherwise (TLS when the main listener serves wss:// and
// carries the admin API). The subcommands below run beside the server (in
// its container) and reach it over loopback.
func adminBase(cfg config.Config) (string, error) {
	addr, scheme := cfg.Admin.Listen, "http"
	if addr == "" {
		addr = cfg.Listen
		if cfg.TLS.Enabled() {
			scheme = "https"
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// parseAdminTarget parses args into fl, loads the configuration at
// *cfgPath and returns it with its adminBase; errors are usage errors.
func parseAdminTarget(fl *flag.FlagSet, args []string, cfgPath *string) (config.Config, string, error) {
	if err := fl.Parse(args); err != nil {
		return config.Config{}, "", &exitError{exitUsage, err}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return cfg, "", &exitError{exitUsage, err}
	}
	base, err := adminBase(cfg)
	if err != nil {
		return cfg, "", &exitError{exitUsage, err}
	}
	return cfg, base, nil
}

func adminClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		// Loopback to this node's own certificate, whose name is the public one.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback only
	}}
}

const healthcheckUsage = `usage: wsproxy healthcheck [-config FILE] [-path /livez]

Asks the wsproxy of this configuration, over loopback, for PATH (default
/livez) and exits 0 on HTTP 200, 1 otherwise. For container health checks
(the image has no shell or curl).

`

func runHealthcheck(args []string) error {
	fl := flag.NewFlagSet("wsproxy healthcheck", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(fl.Output(), healthcheckUsage); fl.PrintDefaults() }
	cfgPath := fl.String("config", "config.yaml", "configuration of the server to probe")
	path := fl.String("path", "/livez", "path to ask for")
	timeout := fl.Duration("timeout", 3*time.Second, "request timeout")
	_, base, err := parseAdminTarget(fl, args, cfgPath)
	if err != nil {
		return err
	}
	resp, err := adminClient(*timeout).Get(base + *path)
	if err != nil {
		return &exitError{exitFail, fmt.Errorf("healthcheck: %w", err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return &exitError{exitFail, fmt.Errorf("healthcheck: %s%s: %d %s", base, *path, resp.StatusCode, strings.TrimSpace(string(body)))}
	}
	fmt.Printf("%s%s: %s\n", base, *path, strings.TrimSpace(string(body)))
	return nil
}

const drainUsage = `usage: wsproxy drain [-config FILE] [-window D] [-wait]

Starts a drain of the wsproxy of this configuration over loopback (POST
/api/websocket/drain, with admin.token when set): it stops accepting
connections and closes its clients with 1001 over the window (default
admin.drain_window). With -wait, returns once every client is gone or the
window (plus 5 s) has passed: a Kubernetes preStop hook.

`

type drainState struct {
	Draining    bool  `json:"draining"`
	Connections int   `json:"connections"`
	WindowMs    int64 `json:"windowMs"`
	Remaining   int   `json:"remaining"`
}

func runDrain(args []string) error {
	fl := flag.NewFlagSet("wsproxy drain", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(fl.Output(), drainUsage); fl.PrintDefaults() }
	cfgPath := fl.String("config", "config.yaml", "configuration of the server to drain")
	window := fl.Duration("window", 0, "drain window (0: admin.drain_window)")
	wait := fl.Bool("wait", false, "wait until the drain is complete")
	cfg, base, err := parseAdminTarget(fl, args, cfgPath)
	if err != nil {
		return err
	}
	if *window <= 0 {
		*window = cfg.Admin.DrainWindow
	}
	cl := adminClient(10 * time.Second)
	call := func(method, u string) (drainState, error) {
		var st drainState
		req, err := http.NewRequest(method, u, nil)
		if err != nil {
			return st, err
		}
		if cfg.Admin.Token != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.Admin.Token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return st, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode != http.StatusOK {
			return st, fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return st, json.Unmarshal(body, &st)
	}
	st, err := call(http.MethodPost, base+"/api/websocket/drain?window="+url.QueryEscape(window.String()))
	if err != nil {
		return &exitError{exitFail, fmt.Errorf("drain: %w", err)}
	}
	fmt.Fprintf(os.Stdout, "drain started: %d connections over %s\n", st.Connections, time.Duration(st.WindowMs)*time.Millisecond)
	if !*wait {
		return nil
	}
	deadline := time.Now().Add(time.Duration(st.WindowMs)*time.Millisecond + 5*time.Second)
	for {
		st, err = call(http.MethodGet, base+"/api/websocket/drain")
		if err == nil && st.Remaining == 0 {
			fmt.Fprintln(os.Stdout, "drain complete")
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return &exitError{exitFail, fmt.Errorf("drain: %w", err)}
			}
			return &exitError{exitFail, fmt.Errorf("drain: %d connections remain after the window", st.Remaining)}
		}
		time.Sleep(250 * time.Millisecond)
	}
}
