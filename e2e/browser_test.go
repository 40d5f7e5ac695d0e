package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/valyala/fasthttp"
)

// chromium returns the browser to drive, or skips loudly: scripts/test.sh
// installs Debian's chromium when it is absent.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("SKIPPING BROWSER TEST: no chromium on PATH (scripts/test.sh installs it with apt-get install -y chromium)")
	return ""
}

// pageState is what the demo page exposes as window.wsproxyDemo plus what
// it rendered.
type pageState struct {
	Status   string         `json:"status"`
	Rows     int            `json:"rows"`
	Symbols  []string       `json:"symbols"`
	Prices   []string       `json:"prices"`
	Trades   int            `json:"trades"`
	Messages int            `json:"messages"`
	ByType   map[string]int `json:"byType"`
	Pongs    int            `json:"pongs"`
	ConnID   string         `json:"connectionId"`
}

const pageStateJS = `(() => {
  const s = window.wsproxyDemo || {};
  const rows = [...document.querySelectorAll('#markets [data-symbol]')];
  return {
    status: document.getElementById('status').dataset.state,
    rows: rows.length,
    symbols: rows.map(r => r.dataset.symbol),
    prices: rows.map(r => r.querySelector('[data-field=last]').textContent),
    trades: document.querySelectorAll('#trades tbody tr').length,
    messages: s.messages || 0,
    byType: s.byType || {},
    pongs: s.pongs || 0,
    connectionId: s.connectionId || '',
  };
})()`

// TestBrowserRendersDemoFeed drives headless Chromium against the real
// binary: the demo page at / connects as the deployed frontend does (no
// subscribe, application pings with an ISO timestamp) and renders the
// demo feed's trades, tickers, depth and klines.
func TestBrowserRendersDemoFeed(t *testing.T) {
	browser := chromium(t)
	p := startProc(t, []string{"WSPROXY_SOURCES_DEMO_INTERVAL=50ms"})

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// ?ping=300 shortens the frontend's 30 s ping so that the test sees a pong.
	// The browser lives as long as bctx, the context of this first call.
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+p.addr+"/?ping=300")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	_, err := chromedp.Run(bctx, chromedp.Poll[bool](`(() => { const s = window.wsproxyDemo;
			return !!s && s.pongs > 0 && document.querySelectorAll('#markets [data-symbol]').length >= 3 &&
				document.querySelectorAll('#trades tbody tr').length > 0 &&
				['trade','ticker','depth','kline_1m'].every(t => (s.byType[t] || 0) > 0); })()`,
		chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	st, serr := chromedp.Run(bctx, chromedp.Evaluate[pageState](pageStateJS))
	if err != nil || serr != nil {
		t.Fatalf("page did not render the demo feed: %v / %v (page state %+v)", err, serr, st)
	}
	if st.Status != "connected" || st.ConnID == "" {
		t.Fatalf("page state %+v", st)
	}
	price := regexp.MustCompile(`^\d+\.\d{2}$`)
	for i, sym := range st.Symbols {
		if !price.MatchString(st.Prices[i]) {
			t.Fatalf("%s renders last price %q (state %+v)", sym, st.Prices[i], st)
		}
	}
	for _, want := range []string{"BTC/USDT", "ETH/USDT", "SOL/USDT"} {
		found := false
		for _, s := range st.Symbols {
			found = found || s == want
		}
		if !found {
			t.Fatalf("no row for %s: %+v", want, st)
		}
	}

	shot, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("WSPROXY_E2E_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "browser-demo.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("page state %+v; screenshot %s (%d bytes)", st, path, len(shot))

	// The page behaved as the deployed frontend: connected, never subscribed.
	status, body, err := fasthttp.Get(nil, "http://"+p.addr+"/api/websocket/stats")
	if err != nil || status != 200 {
		t.Fatalf("stats: %d %v", status, err)
	}
	var stats struct {
		Connection struct {
			ActiveConnections  int64 `json:"activeConnections"`
			TotalSubscriptions int64 `json:"totalSubscriptions"`
		} `json:"connection"`
	}
	if err := json.Unmarshal(body, &stats); err != nil {
		t.Fatal(err)
	}
	if stats.Connection.ActiveConnections < 1 || stats.Connection.TotalSubscriptions != 0 {
		t.Fatalf("server saw %s", body)
	}
}
