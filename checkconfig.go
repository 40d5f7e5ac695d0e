package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"wsproxy/config"
)

const checkConfigUsage = `usage: wsproxy check-config [-config FILE]

Loads the configuration as serving would (file, then WSPROXY_* environment
overrides, then defaults), validates it and prints the effective
configuration: every key with its value, credentials masked, keys set from
the environment marked "# from WSPROXY_...". Exit status: 0 valid, 2 invalid
(the error names the key).

`

func runCheckConfig(args []string) error {
	fl := flag.NewFlagSet("wsproxy check-config", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), checkConfigUsage)
		fl.PrintDefaults()
	}
	cfgPath := fl.String("config", "config.yaml", "path to the YAML configuration (\"\" for defaults only)")
	if err := fl.Parse(args); err != nil {
		return &exitError{exitUsage, err}
	}
	if fl.NArg() > 0 {
		return &exitError{exitUsage, fmt.Errorf("check-config: unexpected arguments %q", fl.Args())}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("check-config: %w", err)}
	}
	out, err := config.EffectiveYAML(cfg, os.LookupEnv)
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("check-config: %w", err)}
	}
	src := *cfgPath
	if src == "config.yaml" {
		if _, err := os.Stat(src); err != nil {
			src = ""
		}
	}
	if src == "" {
		src = "(none: defaults and environment only)"
	}
	var overrides []string
	for _, name := range config.EnvNames() {
		if _, ok := os.LookupEnv(name); ok {
			overrides = append(overrides, name)
		}
	}
	fmt.Printf("# wsproxy effective configuration: valid\n# file: %s\n# environment overrides: %s\n",
		src, orNone(strings.Join(overrides, ", ")))
	_, err = os.Stdout.Write(out)
	return err
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
