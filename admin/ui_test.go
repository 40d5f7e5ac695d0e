package admin_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"wsproxy/config"
)

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// The page and its assets are served from the binary, load nothing from
// another origin, and admin.ui: false turns them off.
func TestAdminUIServedOfflineAndSwitchable(t *testing.T) {
	e := start(t, nil)
	code, h, page := get(t, e.url("/admin/"))
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(page, "wsproxy admin") {
		t.Fatalf("/admin/: %d %s", code, h.Get("Content-Type"))
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Fatalf("/admin/ CSP %q", csp)
	}
	if code, h, _ := get(t, e.url("/admin")); code != 301 || h.Get("Location") == "" {
		t.Fatalf("/admin: %d %v", code, h)
	}
	// Every asset the page references is served, and none is remote.
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("page references %v", refs)
	}
	for _, r := range refs {
		if strings.Contains(r[1], "//") {
			t.Fatalf("page loads %s from elsewhere", r[1])
		}
		code, h, body := get(t, e.url("/admin/"+r[1]))
		if code != 200 || len(body) == 0 {
			t.Fatalf("%s: %d", r[1], code)
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Fatalf("%s mentions a remote URL", r[1])
		}
		if strings.HasSuffix(r[1], ".js") && !strings.Contains(h.Get("Content-Type"), "javascript") {
			t.Fatalf("%s content type %q", r[1], h.Get("Content-Type"))
		}
	}

	off := false
	e = start(t, func(c *config.Config) { c.Admin.UI = &off })
	for _, p := range []string{"/admin/", "/admin", "/admin/app.js"} {
		if code, _, _ := get(t, e.url(p)); code != 404 {
			t.Fatalf("admin.ui false: %s answers %d", p, code)
		}
	}
}
