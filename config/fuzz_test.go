package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseConfig feeds arbitrary YAML to the config loader: it must never
// panic, and whatever it accepts must survive ApplyDefaults and Validate
// (which may refuse it, with an error), with ApplyDefaults idempotent.
func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("../config.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"listen: :1\n",
		"limits: {max_filters: -3, message_rate: -1, connect_rate: 1e308}\n",
		"auth: {mode: jwt, jwt: {algorithm: RS256, public_key_file: /dev/null}}\n",
		"allowed_origins: ['*', 'https://*.x']\n",
		"heartbeat_interval: 9223372036854775807ns\n",
		"a: &a [*a, *a]\n",
		"compat: {unfiltered_receive_all: ~}\n",
		"queue: {max_bytes: 1}\nbatch: {flush_interval: -1s}\n",
		"- - -\n",
		"{",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error without the config prefix: %v", err)
			}
			return
		}
		cfg.ApplyDefaults()
		_ = cfg.Validate()
		again := cfg
		again.ApplyDefaults()
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("ApplyDefaults not idempotent:\n%+v\n%+v", cfg, again)
		}
	})
}

// FuzzConfigEnv sets one environment override (any known key, any value):
// applyEnv either applies it or returns an error naming the variable.
func FuzzConfigEnv(f *testing.F) {
	keys := envKeys(reflect.TypeOf(Config{}), EnvPrefix)
	f.Add(uint16(0), "127.0.0.1:1")
	f.Add(uint16(3), "1h")
	f.Add(uint16(7), "-9223372036854775808")
	f.Add(uint16(11), "a, ,b,")
	f.Add(uint16(20), "NaN")
	f.Add(uint16(25), "true")
	f.Fuzz(func(t *testing.T, k uint16, v string) {
		key := keys[int(k)%len(keys)]
		var cfg Config
		err := applyEnv(reflect.ValueOf(&cfg).Elem(), EnvPrefix, func(name string) (string, bool) {
			return v, name == key
		})
		if err != nil {
			if !strings.Contains(err.Error(), key) {
				t.Fatalf("error does not name %s: %v", key, err)
			}
			return
		}
		cfg.ApplyDefaults()
		_ = cfg.Validate()
	})
}

// envKeys lists every environment variable applyEnv looks up.
func envKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(durationType) {
			out = append(out, envKeys(f.Type, name)...)
			continue
		}
		out = append(out, name)
	}
	return out
}
