package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
// Without it, the module version or the VCS revision of the build is shown.
var version = ""

// versionString is "wsproxy <version> (<revision>[, modified], <go version>)".
func versionString() string {
	v, rev, dirty := version, "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		rev = "unknown revision"
	}
	if dirty {
		rev += ", modified"
	}
	return fmt.Sprintf("wsproxy %s (%s, %s %s/%s)", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func runVersion(args []string) error {
	if len(args) > 0 {
		return &exitError{exitUsage, fmt.Errorf("version: unexpected arguments %q", args)}
	}
	fmt.Println(versionString())
	return nil
}
