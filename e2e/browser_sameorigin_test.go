package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// frontendPage is a stand-in for the built legacy frontend: from one origin
// it calls every REST endpoint the real one calls, listens to the stats
// event stream and opens /ws, and publishes what came back.
const frontendPage = `<!doctype html><title>frontend</title><script>
const r = window.result = {route: location.pathname, rest: {}, events: 0, ws: 0, errors: []};
const json = (m, p, b) => fetch(p, {method: m, headers: {'Content-Type': 'application/json'}, body: b})
  .then(x => x.json().then(v => { r.rest[m + ' ' + p] = x.status + ' ' + v.answered; }))
  .catch(e => r.errors.push(m + ' ' + p + ': ' + e));
(async () => {
  for (const [m, p, b] of [['GET','/api/stats'],['GET','/api/adapters'],['GET','/api/subscriptions'],
      ['POST','/api/subscriptions','{"symbol":"BTCUSDT"}'],['DELETE','/api/subscriptions','{"id":"1"}'],
      ['GET','/api/pubsub/status'],['POST','/api/pubsub/toggle'],['GET','/health']]) await json(m, p, b);
})();
const es = new EventSource('/api/stats/stream');
es.onmessage = e => { if (JSON.parse(e.data).seq === r.events) r.events++; else r.errors.push('event ' + e.data); };
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
ws.onmessage = () => r.ws++;
</script>`

// TestBrowserFrontendSameOrigin drives headless Chromium against the
// binary serving a built frontend (static.dir) on a client-side route, with
// the collector's REST API and event stream through upstream.url and the
// demo feed on /ws: every call the frontend makes succeeds.
func TestBrowserFrontendSameOrigin(t *testing.T) {
	browser := chromium(t)
	mux := http.NewServeMux()
	for _, ep := range []string{"GET /api/stats", "GET /api/adapters", "GET /api/subscriptions",
		"POST /api/subscriptions", "DELETE /api/subscriptions", "GET /api/pubsub/status",
		"POST /api/pubsub/toggle", "GET /health"} {
		mux.HandleFunc(ep, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"answered":%q}`, ep)
		})
	}
	mux.HandleFunc("GET /api/stats/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: {\"seq\":%d}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	})
	up := httptest.NewServer(mux)
	t.Cleanup(func() { up.CloseClientConnections(); up.Close() })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(frontendPage), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, []string{"WSPROXY_UPSTREAM_URL=" + up.URL, "WSPROXY_STATIC_DIR=" + dir,
		"WSPROXY_SOURCES_DEMO_INTERVAL=50ms"})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(browser), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+p.addr+"/views/adapters")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	type result struct {
		Route  string            `json:"route"`
		Rest   map[string]string `json:"rest"`
		Events int               `json:"events"`
		WS     int               `json:"ws"`
		Errors []string          `json:"errors"`
	}
	_, err := chromedp.Run(bctx, chromedp.Poll[bool](`(() => { const r = window.result;
			return !!r && (Object.keys(r.rest).length === 8 || r.errors.length > 0) && r.events >= 10 && r.ws >= 10; })()`,
		chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	res, rerr := chromedp.Run(bctx, chromedp.Evaluate[result](`window.result`))
	if err != nil || rerr != nil {
		t.Fatalf("frontend did not get its data: %v / %v (%+v)", err, rerr, res)
	}
	if res.Route != "/views/adapters" || len(res.Errors) > 0 || len(res.Rest) != 8 {
		t.Fatalf("frontend state %+v", res)
	}
	for call, got := range res.Rest {
		if want := "200 " + call; got != want {
			t.Fatalf("%s answered %q, want %q", call, got, want)
		}
	}
	t.Logf("frontend on %s: 8 REST calls, %d events in order, %d WebSocket messages", res.Route, res.Events, res.WS)
}
