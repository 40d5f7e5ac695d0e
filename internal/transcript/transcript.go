// Package transcript loads the recorded transcripts of the two legacy
// WebSocket servers (testdata/A-<n>.jsonl, B-<n>.jsonl; their format is
// described in ../shared/legacy/README.md), replays a scenario's phases
// against a server under test and compares what each client received with
// what the legacy server sent. It is used by the replay tests of the real
// binary (e2e) and of the reference server (tools/legacy).
package transcript

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Record is one line of a transcript.
type Record struct {
	Dir     string          `json:"dir"`
	Client  int             `json:"client"`
	TMs     float64         `json:"t_ms"`
	Frame   json.RawMessage `json:"frame"`
	Opcode  int             `json:"opcode"`
	Label   string          `json:"label"`
	NonJSON bool            `json:"nonjson"`
	Repeat  int             `json:"repeat"`
	Phase   string          `json:"phase"`
}

// Phase is one phase of a scenario: a fresh server, fresh clients.
type Phase struct {
	// Server is "A" or "B".
	Server string
	// ID is the phase number ("5.8"); Title the rest of its name.
	ID, Title string
	Records   []Record
}

// Name is the phase's name in reports: "A-5.8".
func (p *Phase) Name() string { return p.Server + "-" + p.ID }

// Dir is the directory holding the transcripts.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// Load reads the transcript of server ("A" or "B") for scenario n and
// returns its phases in order.
func Load(server string, n int) ([]Phase, error) {
	path := filepath.Join(Dir(), fmt.Sprintf("%s-%d.jsonl", server, n))
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	defer f.Close()
	var phases []Phase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 8<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("transcript: %s line %d: %w", path, line, err)
		}
		if len(phases) == 0 || phases[len(phases)-1].Records[0].Phase != r.Phase {
			id, title, _ := strings.Cut(r.Phase, " ")
			phases = append(phases, Phase{Server: server, ID: id, Title: title})
		}
		p := &phases[len(phases)-1]
		p.Records = append(p.Records, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("transcript: %s: %w", path, err)
	}
	return phases, nil
}

// Clients returns the client numbers of p in increasing order.
func (p *Phase) Clients() []int {
	seen := map[int]bool{}
	for _, r := range p.Records {
		if r.Client > 0 {
			seen[r.Client] = true
		}
	}
	out := make([]int, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Ints(out)
	return out
}

// Injected returns every pipeline message of p in order, repeats expanded.
func (p *Phase) Injected() []json.RawMessage {
	var out []json.RawMessage
	for _, r := range p.Records {
		if r.Dir != "inject" {
			continue
		}
		n := max(r.Repeat, 1)
		for range n {
			out = append(out, r.Frame)
		}
	}
	return out
}
