package config

import (
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// NonKeyEnv are the WSPROXY_* environment variables that are not
// configuration keys, with what reads them. Every other WSPROXY_* variable
// must name a key (EnvNames), or the process stops at start (CheckEnv): a
// typo is never silently ignored.
var NonKeyEnv = map[string]string{
	"WSPROXY_DEBUG_PPROF":     "listen address of the opt-in profiling endpoint (pprof.go)",
	"WSPROXY_SOAK":            "length of the soak test (make soak; tests only)",
	"WSPROXY_E2E_SCREENSHOTS": "directory the browser tests write their screenshots to (tests only)",
	"WSPROXY_BENCH_PUBLISH":   "set by BenchmarkSourceIngest for its publisher process (tests only)",
}

// EnvNames returns the environment variable of every configuration key,
// sorted, derived from the config structs (WSPROXY_ + the yaml path).
func EnvNames() []string {
	var names []string
	var cfg Config
	_ = walkEnv(reflect.ValueOf(&cfg).Elem(), EnvPrefix, nil, func(name string, _ []string, _ reflect.Value) error {
		names = append(names, name)
		return nil
	})
	slices.Sort(names)
	return names
}

// CheckEnv returns an error naming every WSPROXY_* variable of environ
// ("NAME=value" entries) that is neither a configuration key nor one of
// NonKeyEnv.
func CheckEnv(environ []string) error {
	known := make(map[string]bool)
	for _, n := range EnvNames() {
		known[n] = true
	}
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") || known[name] {
			continue
		}
		if _, ok := NonKeyEnv[name]; ok {
			continue
		}
		unknown = append(unknown, name)
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("config: environment variable %s names no configuration key (see config.yaml; keys are %s_ + the yaml path upper-cased, joined by '_')",
		strings.Join(unknown, ", "), EnvPrefix)
}

// secretKey reports whether a key holds a credential, by its last path
// element.
func secretKey(leaf string) bool {
	for _, w := range []string{"password", "secret", "token", "creds", "credential", "nkey", "api_key"} {
		if strings.Contains(leaf, w) {
			return true
		}
	}
	return false
}

const masked = "********"

// EffectiveYAML renders cfg as YAML: every key with its value (durations as
// "30s"), credentials masked, and a line comment on each key set from the
// environment by lookup naming the variable.
func EffectiveYAML(cfg Config, lookup func(string) (string, bool)) ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	parents := map[string]*yaml.Node{"": root}
	err := walkEnv(reflect.ValueOf(&cfg).Elem(), EnvPrefix, nil, func(name string, path []string, fv reflect.Value) error {
		parent := root
		for i := range path[:len(path)-1] {
			key := strings.Join(path[:i+1], ".")
			n, ok := parents[key]
			if !ok {
				n = &yaml.Node{Kind: yaml.MappingNode}
				parent.Content = append(parent.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: path[i]}, n)
				parents[key] = n
			}
			parent = n
		}
		leaf := path[len(path)-1]
		val := valueNode(fv, secretKey(leaf))
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: leaf}
		if _, ok := lookup(name); ok {
			val.LineComment = "from " + name
		}
		parent.Content = append(parent.Content, k, val)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// valueNode renders one leaf value; secret masks non-empty strings, and
// passwords inside URLs are masked whatever the key.
func valueNode(fv reflect.Value, secret bool) *yaml.Node {
	str := func(s string) *yaml.Node {
		if s != "" && secret {
			s = masked
		} else {
			s = maskURL(s)
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Value: s, Style: yaml.DoubleQuotedStyle}
	}
	scalar := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	if fv.Type() == durationType {
		return scalar(time.Duration(fv.Int()).String())
	}
	switch fv.Kind() {
	case reflect.Pointer:
		if fv.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
		}
		return valueNode(fv.Elem(), secret)
	case reflect.String:
		return str(fv.String())
	case reflect.Bool:
		return scalar(strconv.FormatBool(fv.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar(strconv.FormatInt(fv.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return scalar(strconv.FormatUint(fv.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		return scalar(strconv.FormatFloat(fv.Float(), 'g', -1, 64))
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := 0; i < fv.Len(); i++ {
			n.Content = append(n.Content, valueNode(fv.Index(i), secret))
		}
		return n
	}
	// Anything else (maps, structs behind pointers): as yaml.v3 renders it.
	var n yaml.Node
	if err := n.Encode(fv.Interface()); err != nil {
		return str(fmt.Sprint(fv.Interface()))
	}
	if secret {
		return str(masked)
	}
	return &n
}

// maskURL masks the password of a URL with user information
// ("redis://user:pw@host" → "redis://user:********@host"); other strings are
// returned as they are.
func maskURL(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), masked)
	return strings.Replace(u.String(), url.QueryEscape(masked), masked, 1)
}

var errLine = regexp.MustCompile(`line (\d+):`)

// keysAtErrorLines names the keys at the lines a YAML decoding error points
// to (" (key: queue.max_bytes)"), so that a type error names its key.
func keysAtErrorLines(b []byte, err error) string {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return ""
	}
	var keys []string
	for _, m := range errLine.FindAllStringSubmatch(err.Error(), -1) {
		line, _ := strconv.Atoi(m[1])
		if k := keyAtLine(&doc, nil, line); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	return " (key: " + strings.Join(keys, ", ") + ")"
}

func keyAtLine(n *yaml.Node, path []string, line int) string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, path, line); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := append(path[:len(path):len(path)], n.Content[i].Value)
			if n.Content[i].Line == line {
				return strings.Join(p, ".")
			}
			if k := keyAtLine(n.Content[i+1], p, line); k != "" {
				return k
			}
		}
	}
	return ""
}
