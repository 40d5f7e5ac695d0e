package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// UpstreamConfig configures the reverse proxy to the collector's HTTP API,
// so that the frontend reaches /api/stats, /api/subscriptions, /health, ...
// on the host that serves /ws. Which paths wsproxy keeps for itself is
// listed in README "Same origin: upstream and static files".
type UpstreamConfig struct {
	// URL of the upstream ("http://collector:3000"; a path is prefixed to
	// every forwarded path). Every request wsproxy does not own is proxied
	// there. "": no upstream, such requests get 404.
	URL string `yaml:"url"`
	// DialTimeout bounds connecting to the upstream (502 beyond). 0: 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ResponseTimeout bounds sending the request and waiting for the
	// upstream's response headers (504 beyond). 0: 30s.
	ResponseTimeout time.Duration `yaml:"response_timeout"`
	// IdleTimeout is the longest the upstream may stay silent inside a
	// response body, a server-sent event stream included; the response is
	// then cut off (an EventSource reconnects). 0: 5m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxBodyBytes is the largest request body forwarded (413 beyond, the
	// upstream never sees it). 0: 1 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxConnections to the upstream at once (each open event stream holds
	// one); a request that finds none free within ResponseTimeout gets 503.
	// 0: 512.
	MaxConnections int `yaml:"max_connections"`
}

// StaticConfig serves a built frontend from a directory.
type StaticConfig struct {
	// Dir holds the built frontend (index.html and its assets), served at /
	// in place of the demo page; a GET for a path outside /api/ that names
	// no file and has no extension is answered with index.html (client-side
	// routes). "": off.
	Dir string `yaml:"dir"`
}

// MaxUpstreamBody caps upstream.max_body_bytes.
const MaxUpstreamBody = 1 << 30

func (c *Config) validateUpstream() []error {
	var errs []error
	if c.Upstream.URL != "" {
		if _, err := ParseUpstreamURL(c.Upstream.URL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Upstream.MaxBodyBytes > MaxUpstreamBody {
		errs = append(errs, fmt.Errorf("upstream.max_body_bytes %d exceeds %d", c.Upstream.MaxBodyBytes, MaxUpstreamBody))
	}
	if d := c.Static.Dir; d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("static.dir %q: not a readable directory", d))
		} else if _, err := os.Stat(filepath.Join(d, "index.html")); err != nil {
			errs = append(errs, fmt.Errorf("static.dir %q: no index.html", d))
		}
	}
	return errs
}

// ParseUpstreamURL accepts http(s)://host[:port][/base] only.
func ParseUpstreamURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("upstream.url %q: %w", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("upstream.url %q: scheme must be http or https", s)
	case u.Host == "":
		return nil, fmt.Errorf("upstream.url %q: no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("upstream.url: user info, query and fragment are not allowed")
	}
	return u, nil
}
