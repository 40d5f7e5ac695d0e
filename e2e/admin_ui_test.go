package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/fasthttp/websocket"

	"wsproxy/internal/wstest"
)

// headless starts headless Chromium for the test; the returned context
// lives until the test ends.
func headless(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	browser := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1600),
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
		// Timers of a headless page must not be throttled: the page refreshes
		// on a timer.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	return bctx
}

// adminPage is what the admin page shows: the raw value behind every
// readout (data-value), the canvas bookkeeping and the page's refresh state.
type adminPage struct {
	Refreshes     int                `json:"refreshes"`
	LastRefreshAt float64            `json:"lastRefreshAt"`
	Values        map[string]string  `json:"values"`
	Texts         map[string]string  `json:"texts"`
	Charts        map[string]canvasS `json:"charts"`
	Rows          []string           `json:"rows"`
	Notice        string             `json:"notice"`
	NoticeStatus  string             `json:"noticeStatus"`
	ConnError     string             `json:"connError"`
	Stored        int                `json:"stored"`
	Cookie        string             `json:"cookie"`
}

type canvasS struct {
	Points int     `json:"points"`
	LastT  float64 `json:"lastT"`
	Pixels string  `json:"pixels"`
}

const adminPageJS = `(() => {
  const s = window.wsproxyAdmin || {};
  const values = {}, texts = {};
  for (const el of document.querySelectorAll('[data-metric]')) {
    values[el.dataset.metric] = el.dataset.value || '';
    texts[el.dataset.metric] = el.textContent;
  }
  const charts = {};
  for (const f of document.querySelectorAll('figure.chart')) {
    const c = f.querySelector('canvas');
    charts[f.id] = { points: Number(c.dataset.points || 0), lastT: Number(c.dataset.lastT || 0), pixels: c.toDataURL() };
  }
  const n = document.getElementById('notice');
  const ce = document.getElementById('conn-error');
  return {
    refreshes: s.refreshes || 0, lastRefreshAt: s.lastRefreshAt || 0, values, texts, charts,
    rows: [...document.querySelectorAll('#connections tbody tr')].map(r => r.dataset.id),
    notice: n.hidden ? '' : n.textContent, noticeStatus: n.dataset.status || '',
    connError: ce.hidden ? '' : ce.textContent,
    stored: localStorage.length + sessionStorage.length, cookie: document.cookie,
  };
})()`

func readAdminPage(t *testing.T, ctx context.Context) adminPage {
	t.Helper()
	st, err := chromedp.Run(ctx, chromedp.Evaluate[adminPage](adminPageJS))
	if err != nil {
		t.Fatalf("read page: %v", err)
	}
	return st
}

// pollPage waits until cond holds on the page's state.
func pollPage(t *testing.T, ctx context.Context, what string, timeout time.Duration, cond func(adminPage) bool) adminPage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := readAdminPage(t, ctx)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; page: %+v", timeout, what, summary(st))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func summary(st adminPage) string {
	st.Charts = nil
	b, _ := json.Marshal(st)
	return string(b)
}

// metricsSample is one answer of /api/websocket/metrics and when it came.
type metricsSample struct {
	at time.Time
	m  struct {
		Connections int64 `json:"connections"`
		Latency     struct {
			P50 float64 `json:"p50"`
			P99 float64 `json:"p99"`
		} `json:"latency"`
		Throughput struct {
			MessagesPerSecond float64 `json:"messagesPerSecond"`
			BytesPerSecond    float64 `json:"bytesPerSecond"`
		} `json:"throughput"`
		Memory struct {
			HeapMB float64 `json:"heapMB"`
			Level  string  `json:"level"`
		} `json:"memory"`
		Shed map[string]uint64 `json:"shed"`
	}
}

// sampler polls /api/websocket/metrics every few milliseconds while the
// test reads the page, so that what the page shows can be matched against
// what the endpoint answered around the page's own refresh.
type sampler struct {
	mu      sync.Mutex
	samples []metricsSample
	stop    chan struct{}
	done    chan struct{}
}

func startSampler(t *testing.T, url string) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			resp, err := http.Get(url)
			if err == nil {
				var ms metricsSample
				ms.at = time.Now()
				if json.NewDecoder(resp.Body).Decode(&ms.m) == nil && resp.StatusCode == 200 {
					s.mu.Lock()
					s.samples = append(s.samples, ms)
					s.mu.Unlock()
				}
				resp.Body.Close()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { close(s.stop); <-s.done })
	return s
}

// around returns the samples taken within d of at.
func (s *sampler) around(at time.Time, d time.Duration) []metricsSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metricsSample
	for _, m := range s.samples {
		if m.at.Sub(at).Abs() <= d {
			out = append(out, m)
		}
	}
	return out
}

func (s *sampler) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.samples)
}

// TestAdminPageInBrowser drives headless Chromium against the real binary
// with the admin API on admin.listen and an admin token: the charts of
// /admin/ move, the values shown are the endpoint's, Drain without a token
// shows the 401 message, and Kick closes a real client with 1000.
func TestAdminPageInBrowser(t *testing.T) {
	ctx := headless(t, 150*time.Second)
	adminAddr := freeAddr(t)
	const token = "ui-e2e-token"
	const refresh = 500 * time.Millisecond
	p := startProc(t, []string{
		"WSPROXY_ADMIN_LISTEN=" + adminAddr, "WSPROXY_ADMIN_TOKEN=" + token,
		"WSPROXY_SOURCES_DEMO_INTERVAL=50ms", "WSPROXY_METRICS_WINDOW=2s",
	})
	adm := "http://" + adminAddr
	wstest.Eventually(t, 10*time.Second, "admin listener", func() bool {
		code, _ := tryGet(adm + "/livez")
		return code == 200
	})
	// On the admin listener only.
	if code, _ := tryGet("http://" + p.addr + "/admin/"); code != 404 {
		t.Fatalf("main listener serves /admin/: %d", code)
	}

	client := wstest.Dial(t, p.url("/ws"))
	welcome := client.NextOfType(t, "welcome", 5*time.Second)
	connID := welcome.Str("payload", "connectionId")
	client.NextOfType(t, "trade", 10*time.Second)

	// Every admin call the page makes, with its Authorization header.
	type apiCall struct{ method, path, auth string }
	var callsMu sync.Mutex
	var calls []apiCall
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.Contains(e.Request.URL, "/api/websocket/") {
			auth, _ := e.Request.Headers["Authorization"].(string)
			path := e.Request.URL[strings.Index(e.Request.URL, "/api/"):]
			callsMu.Lock()
			calls = append(calls, apiCall{e.Request.Method, path, auth})
			callsMu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	callsSince := func(from int) []apiCall {
		callsMu.Lock()
		defer callsMu.Unlock()
		return append([]apiCall(nil), calls[from:]...)
	}
	callCount := func() int { return len(callsSince(0)) }

	if err := chromedp.Do(ctx, chromedp.Navigate(adm+"/admin/?refresh="+strconv.Itoa(int(refresh.Milliseconds())))); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	pollPage(t, ctx, "charts with points", 30*time.Second, func(st adminPage) bool {
		if st.Refreshes < 4 {
			return false
		}
		for _, c := range st.Charts {
			if c.Points < 3 {
				return false
			}
		}
		v, _ := strconv.ParseFloat(st.Values["messagesPerSecond"], 64)
		return v > 0
	})

	// Drain without a token: the page shows the 401 message and the node does
	// not drain.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#drain")), chromedp.WaitVisible(chromedp.CSS("#ask"))); err != nil {
		t.Fatalf("drain click: %v", err)
	}
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('ask-token').value`)); err != nil || v != "" {
		t.Fatalf("drain dialog token field %q (%v), want empty: no token held yet", v, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#ask-ok"))); err != nil {
		t.Fatalf("drain confirm: %v", err)
	}
	st := pollPage(t, ctx, "the refusal message", 10*time.Second, func(st adminPage) bool { return st.Notice != "" })
	if st.NoticeStatus != "401" || !strings.Contains(st.Notice, "401 Unauthorized") || !strings.Contains(st.Notice, "admin token") {
		t.Fatalf("drain without token shows %q (status %s)", st.Notice, st.NoticeStatus)
	}
	if code, body := httpDo(t, "GET", adm+"/api/websocket/drain", token); code != 200 || strings.Contains(body, `"draining":true`) {
		t.Fatalf("drain state after the refused drain: %d %s", code, body)
	}

	for _, c := range callsSince(0) {
		if c.auth != "" {
			t.Fatalf("the page sent %q before it held a token: %+v", c.auth, c)
		}
	}

	tokenFrom := callCount()
	// The connection listing needs the admin credential on a node with a
	// token: before the token is entered the table shows the refusal, if
	// any, plainly. Then the token is entered.
	if st := readAdminPage(t, ctx); st.ConnError != "" && !strings.Contains(st.ConnError, "401 Unauthorized") {
		t.Fatalf("connection table refusal reads %q", st.ConnError)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), token)); err != nil {
		t.Fatalf("type token: %v", err)
	}
	first := pollPage(t, ctx, "the client listed", 30*time.Second, func(st adminPage) bool {
		if len(st.Rows) == 0 || st.ConnError != "" {
			return false
		}
		for _, c := range st.Charts {
			if c.Points < 3 {
				return false
			}
		}
		return true
	})
	if len(first.Charts) < 9 {
		t.Fatalf("page has %d charts: %v", len(first.Charts), first.Charts)
	}
	if first.Rows[0] != connID {
		t.Fatalf("connection table rows %v, want the client %s", first.Rows, connID)
	}
	if first.Texts["sourcesUp"] != "1/1" {
		t.Fatalf("sources up shows %q, want 1/1 (the demo feed)", first.Texts["sourcesUp"])
	}

	// Two screenshots 3 s apart: the charts moved (the span asked for by the
	// page's behaviour, not a synchronisation).
	shot1 := screenshot(t, ctx, "admin-1.png")
	time.Sleep(3 * time.Second)
	shot2 := screenshot(t, ctx, "admin-2.png")
	second := readAdminPage(t, ctx)
	if bytes.Equal(shot1, shot2) {
		t.Fatal("the two screenshots 3 s apart are identical")
	}
	for id, c1 := range first.Charts {
		c2 := second.Charts[id]
		if c2.Points <= c1.Points || c2.LastT <= c1.LastT {
			t.Errorf("%s: points %d→%d, newest point %v→%v: did not move", id, c1.Points, c2.Points, c1.LastT, c2.LastT)
		}
		if c2.Pixels == c1.Pixels {
			t.Errorf("%s: canvas unchanged over 3 s", id)
		}
	}

	// The values shown are what /api/websocket/metrics answers, within one
	// refresh: each readout lies within the answers the endpoint gave over
	// one refresh around the page's own fetch.
	smp := startSampler(t, adm+"/api/websocket/metrics")
	wstest.Eventually(t, 10*time.Second, "metrics samples", func() bool { return smp.count() >= 5 })
	var matched bool
	var lastErr string
	for attempt := 0; attempt < 20 && !matched; attempt++ {
		before := readAdminPage(t, ctx).Refreshes
		st := pollPage(t, ctx, "a new refresh", 10*time.Second, func(st adminPage) bool { return st.Refreshes > before })
		at := time.UnixMilli(int64(st.LastRefreshAt))
		wstest.Eventually(t, 5*time.Second, "samples after the refresh", func() bool {
			s := smp.around(at, refresh)
			return len(s) > 0 && s[len(s)-1].at.After(at.Add(refresh/2))
		})
		lastErr = compareShown(st, smp.around(at, refresh))
		matched = lastErr == ""
	}
	if !matched {
		t.Fatalf("page values differ from /api/websocket/metrics: %s", lastErr)
	}

	// Kick the client from its row: it is closed with 1000. The token stays
	// in the tab's memory: nothing in storage or cookies.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-kick=%q]`, connID))), chromedp.WaitVisible(chromedp.CSS("#ask"))); err != nil {
		t.Fatalf("kick click: %v", err)
	}
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('ask-token').value`)); err != nil || v != token {
		t.Fatalf("kick dialog token field %q (%v), want the held token", v, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#ask-ok"))); err != nil {
		t.Fatalf("kick confirm: %v", err)
	}
	cl, _ := client.WaitClose(t, 10*time.Second)
	if cl.Code != websocket.CloseNormalClosure || cl.Reason != "Closed by administrator" {
		t.Fatalf("kicked client closed with %+v, want 1000", cl)
	}
	st = pollPage(t, ctx, "the kick confirmation", 10*time.Second, func(st adminPage) bool { return st.NoticeStatus == "200" })
	if !strings.Contains(st.Notice, connID) || !strings.Contains(st.Notice, "1000") {
		t.Fatalf("kick notice %q", st.Notice)
	}
	if st.Stored != 0 || st.Cookie != "" {
		t.Fatalf("the page stored something: %d storage entries, cookie %q", st.Stored, st.Cookie)
	}
	pollPage(t, ctx, "the table without the kicked client", 10*time.Second, func(st adminPage) bool {
		for _, id := range st.Rows {
			if id == connID {
				return false
			}
		}
		return true
	})
	// From the moment the token was held, every admin call carried it.
	// SendKeys types it one key at a time (calls made while typing carry a
	// prefix of it, or nothing before the first key): the rule applies from
	// the first call that carried the whole token.
	seen := map[string]bool{}
	held := false
	for _, c := range callsSince(tokenFrom) {
		if c.auth == "Bearer "+token {
			held = true
			seen[c.method+" "+strings.SplitN(c.path, "?", 2)[0]] = true
			continue
		}
		if held {
			t.Fatalf("admin call without the held token: %+v", c)
		}
	}
	for _, want := range []string{"GET /api/websocket/metrics", "GET /api/websocket/stats", "GET /api/websocket/connections", "DELETE /api/websocket/connections/" + connID} {
		if !seen[want] {
			t.Errorf("no %s with the token among %v", want, seen)
		}
	}
}

// compareShown checks every readout against the endpoint's answers
// (samples); "" when all match.
func compareShown(st adminPage, samples []metricsSample) string {
	if len(samples) == 0 {
		return "no samples"
	}
	num := func(k string) float64 {
		v, err := strconv.ParseFloat(st.Values[k], 64)
		if err != nil {
			return math.NaN()
		}
		return v
	}
	within := func(name string, shown float64, get func(metricsSample) float64) string {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, s := range samples {
			v := get(s)
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		// The page's fetch falls between the samples, not on one: allow 2 %
		// beyond their range (and float rounding).
		slack := 0.02*math.Max(math.Abs(lo), math.Abs(hi)) + 1e-9
		if math.IsNaN(shown) || shown < lo-slack || shown > hi+slack {
			return fmt.Sprintf("%s shows %v, endpoint answered %v..%v over %d samples", name, shown, lo, hi, len(samples))
		}
		return ""
	}
	checks := []string{
		within("connections", num("connections"), func(s metricsSample) float64 { return float64(s.m.Connections) }),
		within("messagesPerSecond", num("messagesPerSecond"), func(s metricsSample) float64 { return s.m.Throughput.MessagesPerSecond }),
		within("bytesPerSecond", num("bytesPerSecond"), func(s metricsSample) float64 { return s.m.Throughput.BytesPerSecond }),
		within("latencyP50", num("latencyP50"), func(s metricsSample) float64 { return s.m.Latency.P50 }),
		within("latencyP99", num("latencyP99"), func(s metricsSample) float64 { return s.m.Latency.P99 }),
		within("heapMB", num("heapMB"), func(s metricsSample) float64 { return s.m.Memory.HeapMB }),
		within("shedTotal", num("shedTotal"), func(s metricsSample) float64 {
			var n uint64
			for _, v := range s.m.Shed {
				n += v
			}
			return float64(n)
		}),
	}
	if st.Values["memoryLevel"] != samples[0].m.Memory.Level {
		checks = append(checks, fmt.Sprintf("memoryLevel shows %q, endpoint %q", st.Values["memoryLevel"], samples[0].m.Memory.Level))
	}
	if st.Values["connections"] != "1" {
		checks = append(checks, fmt.Sprintf("connections shows %q, want 1", st.Values["connections"]))
	}
	var errs []string
	for _, c := range checks {
		if c != "" {
			errs = append(errs, c)
		}
	}
	return strings.Join(errs, "; ")
}

func screenshot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("WSPROXY_E2E_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	return shot
}

func tryGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
