package config_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"wsproxy/config"
)

// keyPaths walks t's yaml-tagged fields and returns the dotted path of every
// leaf key, independently of the package's own walker.
func keyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		p := tag
		if prefix != "" {
			p = prefix + "." + tag
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			out = append(out, keyPaths(f.Type, p)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// lookupKey returns the key node at path in a mapping tree and whether a
// comment documents it: its own, or that of the group of keys it belongs to
// (siblings on consecutive lines, the first of them commented, as in
// "# user + password, or token.").
func lookupKey(n *yaml.Node, path []string) (key *yaml.Node, commented, ok bool) {
	if n.Kind == yaml.DocumentNode {
		return lookupKey(n.Content[0], path)
	}
	if n.Kind != yaml.MappingNode {
		return nil, false, false
	}
	group := false // the previous sibling is documented and on the line before
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		own := strings.TrimSpace(k.HeadComment) != ""
		documented := own || (group && i >= 2 && k.Line == n.Content[i-2].Line+1)
		if k.Value == path[0] {
			if len(path) == 1 {
				return k, documented, true
			}
			return lookupKey(n.Content[i+1], path[1:])
		}
		group = documented && n.Content[i+1].Kind == yaml.ScalarNode
	}
	return nil, false, false
}

// Every key of config.Config appears in the shipped config.yaml with a
// comment of its own, and has an environment override.
func TestEveryKeyIsDocumentedAndOverridable(t *testing.T) {
	b, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	env := config.EnvNames()
	paths := keyPaths(reflect.TypeOf(config.Config{}), "")
	if len(paths) < 100 {
		t.Fatalf("found only %d keys: the walk is broken", len(paths))
	}
	for _, p := range paths {
		_, commented, ok := lookupKey(&doc, strings.Split(p, "."))
		switch {
		case !ok:
			t.Errorf("%s: not in config.yaml", p)
		case !commented:
			t.Errorf("%s: no comment documents it in config.yaml", p)
		}
		name := config.EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(p, ".", "_"))
		if !slices.Contains(env, name) {
			t.Errorf("%s: no environment variable %s", p, name)
		}
		if err := config.CheckEnv([]string{name + "=x"}); err != nil {
			t.Errorf("%s: %s refused: %v", p, name, err)
		}
	}
}
