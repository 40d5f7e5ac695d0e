package transcript

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Frame is one event a client saw: a text message (batch envelopes of B are
// flattened into their messages), a protocol ping or pong, the close, or a
// refused connection.
type Frame struct {
	// Kind is "text", "ping", "pong", "close" or "connect-failed".
	Kind string
	// Value is the decoded JSON of a text frame (numbers as json.Number).
	Value any
	// Raw is the text frame as received.
	Raw []byte
	// Payload is a ping or pong payload.
	Payload string
	// Code and Reason describe a close.
	Code   int
	Reason string
}

// Type is the "type" of a text frame, "" otherwise.
func (f Frame) Type() string {
	if m, ok := f.Value.(map[string]any); ok {
		s, _ := m["type"].(string)
		return s
	}
	return ""
}

// Get returns the value at a dot-separated path of a text frame.
func (f Frame) Get(path string) (any, bool) {
	v := f.Value
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// Str returns the string at path, "" when absent or not a string.
func (f Frame) Str(path string) string {
	v, _ := f.Get(path)
	s, _ := v.(string)
	return s
}

func (f Frame) String() string {
	switch f.Kind {
	case "text":
		return string(f.Raw)
	case "ping", "pong":
		return f.Kind + "(" + f.Payload + ")"
	case "close":
		return fmt.Sprintf("close(%d %q)", f.Code, f.Reason)
	}
	return f.Kind
}

// TextFrame decodes a received text message.
func TextFrame(raw []byte) Frame {
	f := Frame{Kind: "text", Raw: append([]byte(nil), raw...)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&f.Value); err != nil {
		f.Value = nil
	}
	return f
}

// Flatten replaces each B batch envelope by the messages it carries, as the
// README of the transcripts asks ("compare the flattened message sequence").
func Flatten(in []Frame) []Frame {
	var out []Frame
	for _, f := range in {
		msgs, ok := f.Get("messages")
		if f.Kind != "text" || f.Type() != "batch" || !ok {
			out = append(out, f)
			continue
		}
		arr, _ := msgs.([]any)
		for _, m := range arr {
			b, _ := json.Marshal(m)
			out = append(out, TextFrame(b))
		}
	}
	return out
}

// Expected returns what client c of p received in the recording, batches
// flattened.
func (p *Phase) Expected(c int) []Frame {
	var out []Frame
	for _, r := range p.Records {
		if r.Client != c {
			continue
		}
		switch {
		case r.Dir == "out" && r.Opcode == 1:
			out = append(out, TextFrame(r.Frame))
		case r.Dir == "out" && (r.Opcode == 9 || r.Opcode == 10):
			var v struct {
				Ping string `json:"ping_payload_hex"`
				Pong string `json:"pong_payload_hex"`
			}
			_ = json.Unmarshal(r.Frame, &v)
			kind, hx := "ping", v.Ping
			if r.Opcode == 10 {
				kind, hx = "pong", v.Pong
			}
			b, _ := hex.DecodeString(hx)
			out = append(out, Frame{Kind: kind, Payload: string(b)})
		case r.Dir == "close":
			var v struct {
				Code      int    `json:"code"`
				Reason    string `json:"reason"`
				Initiator string `json:"initiator"`
			}
			_ = json.Unmarshal(r.Frame, &v)
			if v.Initiator == "connect-failed" {
				out = append(out, Frame{Kind: "connect-failed"})
				continue
			}
			out = append(out, Frame{Kind: "close", Code: v.Code, Reason: v.Reason})
		}
	}
	return Flatten(out)
}

// Kept is one difference from a legacy server that wsproxy keeps on
// purpose. A row applies to the phases its Phases pattern matches.
type Kept struct {
	// Phases is a regular expression over phase names ("A-5.8").
	Phases string
	// Client limits the row to one client number; 0: every client.
	Client int
	// What the difference is and Reason why it is kept.
	What, Reason string
	// Extra matches frames wsproxy sends that the recording lacks.
	Extra func(Frame) bool
	// Missing matches recorded frames wsproxy does not send.
	Missing func(Frame) bool
	// Fields are paths ("timestamp", "payload.metadata.routedAt") that may
	// differ, or be present on one side only, in frames of type FieldsOf
	// ("" for every type).
	Fields   []string
	FieldsOf string
}

func (k *Kept) applies(phase string) bool {
	return regexp.MustCompile(k.Phases).MatchString(phase)
}

// Comparison compares one client's frames of one phase.
type Comparison struct {
	Phase  *Phase
	Client int
	Kept   []Kept
	// IDs maps filterIds of the recording to the ones the server under test
	// gave, filled as subscribed replies are compared.
	IDs map[string]string

	injectedTS map[string]bool
	problems   []string
}

// Compare reports every difference between exp and act not covered by a
// kept row, each naming the phase, the client, the frame index and the
// field path. Both sequences are taken after the kept rows' Missing and
// Extra frames are removed; the index is that of the recording.
func Compare(p *Phase, client int, exp, act []Frame, kept []Kept) []string {
	c := &Comparison{Phase: p, Client: client, IDs: map[string]string{}, injectedTS: map[string]bool{}}
	for _, k := range kept {
		if k.applies(p.Name()) && (k.Client == 0 || k.Client == client) {
			c.Kept = append(c.Kept, k)
		}
	}
	for _, m := range p.Injected() {
		var v map[string]json.RawMessage
		if json.Unmarshal(m, &v) == nil && v["timestamp"] != nil {
			c.injectedTS[string(v["timestamp"])] = true
		}
	}
	type idx struct {
		i int
		f Frame
	}
	var e, a []idx
	for i, f := range exp {
		if !c.keptMatch(f, func(k *Kept) func(Frame) bool { return k.Missing }) {
			e = append(e, idx{i, f})
		}
	}
	for i, f := range act {
		if !c.keptMatch(f, func(k *Kept) func(Frame) bool { return k.Extra }) {
			a = append(a, idx{i, f})
		}
	}
	for j := 0; j < len(e) || j < len(a); j++ {
		switch {
		case j >= len(a):
			c.problem(e[j].i, "", "missing frame %s", e[j].f)
		case j >= len(e):
			c.problem(-1, "", "extra frame %s (received #%d)", a[j].f, a[j].i)
		default:
			c.frame(e[j].i, e[j].f, a[j].f)
		}
	}
	return c.problems
}

func (c *Comparison) keptMatch(f Frame, sel func(*Kept) func(Frame) bool) bool {
	for i := range c.Kept {
		if m := sel(&c.Kept[i]); m != nil && m(f) {
			return true
		}
	}
	return false
}

func (c *Comparison) problem(i int, path, format string, args ...any) {
	where := fmt.Sprintf("%s client %d frame %d", c.Phase.Name(), c.Client, i)
	if i < 0 {
		where = fmt.Sprintf("%s client %d after the last recorded frame", c.Phase.Name(), c.Client)
	}
	if path != "" {
		where += " " + path
	}
	c.problems = append(c.problems, where+": "+fmt.Sprintf(format, args...))
}

func (c *Comparison) frame(i int, exp, act Frame) {
	if exp.Kind != act.Kind {
		c.problem(i, "", "got %s, want %s", act, exp)
		return
	}
	switch exp.Kind {
	case "ping", "pong":
		if exp.Payload != act.Payload {
			c.problem(i, "", "payload %q, want %q", act.Payload, exp.Payload)
		}
		return
	case "close":
		if exp.Code != act.Code || exp.Reason != act.Reason {
			c.problem(i, "", "got %s, want %s", act, exp)
		}
		return
	case "connect-failed":
		return
	}
	if exp.Value == nil || act.Value == nil {
		if !bytes.Equal(exp.Raw, act.Raw) {
			c.problem(i, "", "got %s, want %s", act.Raw, exp.Raw)
		}
		return
	}
	typ := exp.Type()
	if act.Type() != typ {
		c.problem(i, "type", "got %s, want %s", act, exp)
		return
	}
	if typ == "subscribed" {
		if id := exp.Str("payload.filterId"); id != "" {
			c.IDs[id] = act.Str("payload.filterId")
		}
	}
	c.value(i, typ, "", exp.Value, act.Value)
}

// allowed reports whether path may differ in a frame of type typ.
func (c *Comparison) allowed(typ, path string) bool {
	for _, k := range c.Kept {
		if k.FieldsOf != "" && k.FieldsOf != typ {
			continue
		}
		for _, p := range k.Fields {
			if pathMatch(p, path) {
				return true
			}
		}
	}
	return false
}

func pathMatch(pattern, path string) bool {
	if strings.HasSuffix(pattern, ".*") {
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	}
	return pattern == path
}

var isoTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`)

// volatile reports whether the value at path is compared loosely (present,
// right type and format) rather than exactly, as the transcripts' README
// lists them.
func (c *Comparison) volatile(typ, path string, exp any) bool {
	switch path {
	case "timestamp":
		return true
	case "payload.timestamp":
		if s, ok := exp.(string); ok && typ != "stats" {
			raw, _ := json.Marshal(s)
			return !c.injectedTS[string(raw)] && isoTime.MatchString(s)
		}
	}
	switch typ {
	case "welcome":
		return path == "payload.connectionId" || path == "payload.serverTime" || path == "payload.proxyVersion"
	case "subscribed":
		return path == "payload.filterId"
	case "stats":
		switch path {
		case "payload.connections.total", "payload.connections.active",
			"payload.subscriptions.total", "payload.subscriptions.channels", "payload.adapters":
			return false
		}
		_, isNum := exp.(json.Number)
		return isNum
	case "batch":
		return path == "count"
	}
	return false
}

func sameKind(a, b any) bool {
	switch a.(type) {
	case json.Number:
		_, ok := b.(json.Number)
		return ok
	case string:
		s, ok := b.(string)
		if as := a.(string); ok && isoTime.MatchString(as) {
			return isoTime.MatchString(s)
		}
		return ok && s != ""
	case bool:
		_, ok := b.(bool)
		return ok
	case map[string]any:
		_, ok := b.(map[string]any)
		return ok
	case []any:
		_, ok := b.([]any)
		return ok
	case nil:
		return b == nil
	}
	return false
}

func (c *Comparison) value(i int, typ, path string, exp, act any) {
	if path != "" && c.volatile(typ, path, exp) {
		if !sameKind(exp, act) {
			c.problem(i, path, "got %s, want a value like %s", show(act), show(exp))
		}
		return
	}
	if typ == "unsubscribed" && path == "payload.filterId" {
		if s, ok := exp.(string); ok {
			if id, ok := c.IDs[s]; ok {
				exp = id
			}
		}
	}
	switch ev := exp.(type) {
	case map[string]any:
		av, ok := act.(map[string]any)
		if !ok {
			c.problem(i, path, "got %s, want an object", show(act))
			return
		}
		keys := make([]string, 0, len(ev)+len(av))
		for k := range ev {
			keys = append(keys, k)
		}
		for k := range av {
			if _, ok := ev[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := join(path, k)
			e, inE := ev[k]
			a, inA := av[k]
			switch {
			case inE && inA:
				c.value(i, typ, p, e, a)
			case c.allowed(typ, p):
			case typ == "stats" && !inE && strings.HasPrefix(p, "payload."):
				// STATS is a superset of both legacy shapes.
			case !inA:
				c.problem(i, p, "missing (want %s)", show(e))
			default:
				c.problem(i, p, "unexpected key (value %s)", show(a))
			}
		}
	case []any:
		av, ok := act.([]any)
		if !ok || len(av) != len(ev) {
			if !c.allowed(typ, path) {
				c.problem(i, path, "got %s, want %s", show(act), show(exp))
			}
			return
		}
		for j := range ev {
			c.value(i, typ, fmt.Sprintf("%s[%d]", path, j), ev[j], av[j])
		}
	default:
		if !equalScalar(exp, act) && !c.allowed(typ, path) {
			c.problem(i, path, "got %s, want %s", show(act), show(exp))
		}
	}
}

func equalScalar(a, b any) bool {
	if an, ok := a.(json.Number); ok {
		bn, ok := b.(json.Number)
		if !ok {
			return false
		}
		if an == bn {
			return true
		}
		af, err1 := an.Float64()
		bf, err2 := bn.Float64()
		return err1 == nil && err2 == nil && af == bf
	}
	return a == b
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
