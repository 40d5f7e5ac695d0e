package deploy

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// No container engine runs where the tests run: the Dockerfile is parsed
// and checked instead, and its build command is run as it is written.

type instruction struct {
	cmd  string // upper-cased
	args string
	line int
}

type stage struct {
	from, name string
	ins        []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur strings.Builder
	start := 0
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s:%d: %s before FROM", path, in.line, in.cmd)
			}
			return
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	for i, line := range strings.Split(string(b), "\n") {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "#") || (trim == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trim, "\\") {
			cur.WriteString(strings.TrimSuffix(trim, "\\") + " ")
			continue
		}
		cur.WriteString(trim)
		flush()
	}
	flush()
	return stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s stage) one(t *testing.T, cmd string) instruction {
	t.Helper()
	all := s.all(cmd)
	if len(all) != 1 {
		t.Fatalf("stage %s: %d %s instructions, want 1", s.from, len(all), cmd)
	}
	return all[0]
}

// execForm decodes a JSON-array (exec form) argument.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil || len(v) == 0 {
		t.Fatalf("line %d: %s %s is not in exec form (no shell in the image)", in.line, in.cmd, in.args)
	}
	return v
}

// copyDest returns the destination of the COPY --from=<from> whose source is src.
func copyDest(s stage, from, src string) string {
	for _, in := range s.all("COPY") {
		f := strings.Fields(in.args)
		if len(f) == 3 && f[0] == "--from="+from && f[1] == src {
			return f[2]
		}
	}
	return ""
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "../Dockerfile")
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	build, rt := stages[0], stages[1]
	if build.name == "" || !strings.HasPrefix(build.from, "golang:") {
		t.Fatalf("build stage FROM %s AS %q", build.from, build.name)
	}
	var buildRun instruction
	for _, in := range build.all("RUN") {
		if strings.Contains(in.args, "go build") {
			buildRun = in
		}
	}
	if !strings.Contains(buildRun.args, "CGO_ENABLED=0") || !strings.Contains(buildRun.args, "-o /out/wsproxy") {
		t.Fatalf("build command %q: want a static (CGO_ENABLED=0) build to /out/wsproxy", buildRun.args)
	}

	// Runtime: an empty base (no shell: nothing to exploit, nothing to write),
	// a non-root numeric user, nothing run at build time.
	if rt.from != "scratch" {
		t.Fatalf("runtime stage FROM %s, want scratch", rt.from)
	}
	if len(rt.all("RUN")) > 0 || len(rt.all("VOLUME")) > 0 {
		t.Fatal("runtime stage runs commands or declares volumes (the root filesystem is meant to be read-only)")
	}
	user := rt.one(t, "USER").args
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" || strings.Trim(uid, "0123456789") != "" {
		t.Fatalf("USER %q: want a numeric non-root user (scratch has no /etc/passwd)", user)
	}
	bin := copyDest(rt, build.name, "/out/wsproxy")
	entry := execForm(t, rt.one(t, "ENTRYPOINT"))
	if bin == "" || entry[0] != bin {
		t.Fatalf("ENTRYPOINT %v does not run the binary copied from the build stage (%q)", entry, bin)
	}
	cfgPath := copyDest(rt, build.name, "/src/config.yaml")
	cmd := execForm(t, rt.one(t, "CMD"))
	if i := slices.Index(cmd, "-config"); cfgPath == "" || i < 0 || i+1 >= len(cmd) || cmd[i+1] != cfgPath {
		t.Fatalf("CMD %v does not read the config copied to %q", cmd, cfgPath)
	}
	if !strings.Contains(rt.one(t, "EXPOSE").args, "8080") {
		t.Fatal("EXPOSE lacks the default listen port 8080")
	}
	hc := rt.one(t, "HEALTHCHECK")
	_, hcCmd, ok := strings.Cut(hc.args, "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %q has no CMD", hc.args)
	}
	probe := execForm(t, instruction{cmd: "HEALTHCHECK", args: strings.TrimSpace(hcCmd), line: hc.line})
	if probe[0] != bin || probe[1] != "healthcheck" || !slices.Contains(probe, "/livez") || !slices.Contains(probe, cfgPath) {
		t.Fatalf("HEALTHCHECK CMD %v: want %s healthcheck -config %s -path /livez", probe, bin, cfgPath)
	}

	// The build command, run as written (the output directory moved), gives
	// a static binary carrying the version, whose health check passes
	// against a running node and fails against a stopped one.
	out := t.TempDir()
	script := strings.ReplaceAll(buildRun.args, "/out/", out+"/")
	sh := exec.Command("sh", "-c", script)
	sh.Dir = ".."
	sh.Env = append(os.Environ(), "VERSION=9.9.9-test")
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("build command %q: %v\n%s", script, err, b)
	}
	built := filepath.Join(out, "wsproxy")
	f, err := elf.Open(built)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the binary is dynamically linked (%v)", p.Type)
		}
	}
	f.Close()
	if v, _, code := runClean(t, nil, "version"); code != 0 || !strings.HasPrefix(v, "wsproxy ") {
		t.Fatalf("version: %q", v)
	}
	if v, _, code := runEnv(t, built, []string{"PATH=" + os.Getenv("PATH")}, "version"); code != 0 || !strings.Contains(v, "9.9.9-test") {
		t.Fatalf("the image's binary reports %q, want the VERSION build argument", v)
	}
	p := startProc(t, built)
	args := slices.Clone(probe[1:])
	args[slices.Index(args, cfgPath)] = "config.yaml" // the repository's, as copied into the image
	env := []string{"PATH=" + os.Getenv("PATH"), "WSPROXY_LISTEN=" + p.addr}
	if o, e, code := runEnv(t, built, env, args...); code != 0 {
		t.Fatalf("HEALTHCHECK against a running node: exit %d %s %s", code, o, e)
	}
	_ = p.cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, err := get("http://" + p.addr + "/livez"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed node still answers")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, code := runEnv(t, built, env, args...); code == 0 {
		t.Fatal("HEALTHCHECK passes against a stopped node")
	}
}
