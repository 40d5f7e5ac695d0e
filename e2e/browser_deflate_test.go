package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/valyala/fasthttp"
)

// zbMsg is message i of the browser compression feed: every fifth a small
// ETH trade (below min_size), every third a BTC ticker, the rest BTC trades.
func zbMsg(i int) (typ, symbol, note string) {
	note = fmt.Sprintf("n%d-%s", i*7919%10007, strings.Repeat("abcdef", i%13))
	switch {
	case i%5 == 4:
		return "trade", "ETH/USDT", ""
	case i%3 == 0:
		return "ticker", "BTC/USDT", note
	}
	return "trade", "BTC/USDT", note
}

func zbPost(t *testing.T, addr string, from, to int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < to; i++ {
		typ, sym, note := zbMsg(i)
		data := fmt.Sprintf(`{"i":%d}`, i)
		if note != "" {
			data = fmt.Sprintf(`{"i":%d,"note":%q,"price":"64%03d.25","qty":"0.%04d","side":"buy"}`, i, note, i%1000, i%10000)
		}
		fmt.Fprintf(&b, `{"exchange":"binance","symbol":%q,"type":%q,"timestamp":%d,"data":%s}`+"\n", sym, typ, time.Now().UnixMilli(), data)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + "/api/dataflow/ingest")
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/x-ndjson")
	req.SetBodyString(b.String())
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 ||
		!strings.Contains(string(resp.Body()), fmt.Sprintf(`"accepted":%d`, to-from)) {
		t.Fatalf("ingest: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
}

// The page's sockets: each records every data message it decoded.
const zbPageJS = `(() => {
  window.zt = {};
  window.zopen = (name, sub) => {
    const s = {msgs: [], bad: [], replies: [], ext: '', welcome: false, closed: 0};
    window.zt[name] = s;
    const ws = new WebSocket('ws://' + location.host + '/ws');
    s.ws = ws;
    ws.onopen = () => { s.ext = ws.extensions; };
    ws.onclose = (ev) => { s.closed = ev.code || 1; };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { s.bad.push(String(ev.data).slice(0, 200)); return; }
      if (m.type === 'welcome') { s.welcome = true; if (sub) ws.send(sub); return; }
      const d = m.payload && m.payload.data;
      if (d && typeof d.i === 'number') {
        s.msgs.push([d.i, m.type, m.payload.symbol, d.note || '', d.price || '']);
      } else {
        s.replies.push(m.type);
      }
    };
  };
  window.zsend = (name, msg) => window.zt[name].ws.send(msg);
  window.zstate = () => {
    const out = {};
    for (const [k, s] of Object.entries(window.zt)) {
      out[k] = {msgs: s.msgs, bad: s.bad, replies: s.replies, ext: s.ext, welcome: s.welcome, closed: s.closed};
    }
    return out;
  };
  return true;
})()`

type zbSock struct {
	Msgs    [][]any  `json:"msgs"`
	Bad     []string `json:"bad"`
	Replies []string `json:"replies"`
	Ext     string   `json:"ext"`
	Welcome bool     `json:"welcome"`
	Closed  int      `json:"closed"`
}

// check verifies every message s decoded against the feed and returns the
// sequence of i it got.
func (s zbSock) check(t *testing.T, name string) []int {
	t.Helper()
	if len(s.Bad) > 0 || s.Closed != 0 {
		t.Fatalf("%s: undecodable messages %q, closed %d", name, s.Bad, s.Closed)
	}
	var seq []int
	for _, m := range s.Msgs {
		i := int(m[0].(float64))
		typ, sym, note := zbMsg(i)
		if m[1] != typ || m[2] != sym || m[3] != note || (note != "" && m[4] != fmt.Sprintf("64%03d.25", i%1000)) {
			t.Fatalf("%s: message %d decoded as %v, want %s %s %q", name, i, m, typ, sym, note)
		}
		seq = append(seq, i)
	}
	return seq
}

func contiguous(seq []int, from, to int) bool {
	if len(seq) != to-from {
		return false
	}
	for k, i := range seq {
		if i != from+k {
			return false
		}
	}
	return true
}

// TestBrowserCompressedDelivery: headless Chromium negotiates
// permessage-deflate by itself and its page checks every message it
// receives, in both modes: a socket there from the start, one joining
// mid-stream (after resets), and one with a filter, a snapshot and a
// change of subscription.
func TestBrowserCompressedDelivery(t *testing.T) {
	browser := chromium(t)
	for _, mode := range []string{"per_message", "shared_stream"} {
		t.Run(mode, func(t *testing.T) { browserCompressed(t, browser, mode) })
	}
}

func browserCompressed(t *testing.T, browser, mode string) {
	p := startProc(t, []string{
		"WSPROXY_SOURCES_DEMO_ENABLED=false",
		"WSPROXY_SOURCES_INGEST_ENABLED=true",
		"WSPROXY_COMPRESSION_ENABLED=true",
		"WSPROXY_COMPRESSION_MODE=" + mode,
		"WSPROXY_COMPRESSION_MIN_SIZE=190",
		"WSPROXY_COMPRESSION_RESET_EVERY=25",
		// Bursts of 110 messages fit the queue: nothing is shed here
		// (TestDeflateStalledReader covers shedding).
		"WSPROXY_QUEUE_MAX_MESSAGES=1000",
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
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
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+p.addr+"/api/websocket/stats")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](zbPageJS)); err != nil {
		t.Fatal(err)
	}
	js := func(expr string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[any](expr)); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
	}
	waitFor := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](cond,
			chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			st, _ := chromedp.Run(bctx, chromedp.Evaluate[map[string]zbSock](`window.zstate()`))
			t.Fatalf("waiting for %s: %v (page %+v)", what, err, st)
		}
	}
	state := func() map[string]zbSock {
		t.Helper()
		st, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]zbSock](`window.zstate()`))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	js(`zopen('a')`)
	waitFor("a's welcome", `window.zt.a.welcome`)
	zbPost(t, p.addr, 0, 110)
	waitFor("a: 110 messages", `window.zt.a.msgs.length >= 110`)

	// b joins mid-stream; f subscribes to BTC tickers and gets a snapshot.
	js(`zopen('b')`)
	js(`zopen('f', JSON.stringify({type: 'subscribe', payload: {exchange: ['binance'], dataTypes: ['ticker'], symbols: ['BTC/USDT']}}))`)
	waitFor("b's welcome, f subscribed", `window.zt.b.welcome && window.zt.f.replies.includes('subscribed') && window.zt.f.msgs.length >= 1`)
	zbPost(t, p.addr, 110, 220)
	waitFor("a: 220, b: 110", `window.zt.a.msgs.length >= 220 && window.zt.b.msgs.length >= 110`)

	// f changes its subscription to ETH trades.
	js(`zsend('f', JSON.stringify({type: 'unsubscribe'}))`)
	waitFor("f unsubscribed", `window.zt.f.replies.includes('unsubscribed')`)
	js(`zsend('f', JSON.stringify({type: 'subscribe', payload: {exchange: ['binance'], dataTypes: ['trade'], symbols: ['ETH/USDT']}}))`)
	waitFor("f subscribed twice", `window.zt.f.replies.filter(r => r === 'subscribed').length >= 2`)
	zbPost(t, p.addr, 220, 300)
	waitFor("a: 300, b: 190, f: 20 ETH trades after the change", `window.zt.a.msgs.length >= 300 && window.zt.b.msgs.length >= 190 &&
		window.zt.f.msgs.filter(m => m[0] >= 220).length >= 16`)

	st := state()
	for name, s := range st {
		if !strings.HasPrefix(s.Ext, "permessage-deflate") {
			t.Fatalf("%s negotiated %q", name, s.Ext)
		}
	}
	if seq := st["a"].check(t, "a"); !contiguous(seq, 0, 300) {
		t.Fatalf("a got %v", seq)
	}
	if seq := st["b"].check(t, "b"); !contiguous(seq, 110, 300) {
		t.Fatalf("b got %v", seq)
	}
	fseq := st["f"].check(t, "f")
	var tickers, eth int
	for _, i := range fseq {
		typ, sym, _ := zbMsg(i)
		switch {
		case typ == "ticker" && sym == "BTC/USDT" && i < 220:
			tickers++
		case typ == "trade" && sym == "ETH/USDT" && i >= 220:
			eth++
		default:
			// the unfiltered interval between unsubscribe and subscribe
			// delivers nothing: no message was published then
			t.Fatalf("f got %d outside its subscriptions: %v", i, fseq)
		}
	}
	if tickers != 1+29 || eth != 16 {
		t.Fatalf("f got %d tickers (snapshot + 110..219) and %d ETH trades: %v", tickers, eth, fseq)
	}

	status, body, err := fasthttp.Get(nil, "http://"+p.addr+"/api/websocket/stats")
	if err != nil || status != 200 {
		t.Fatalf("stats: %d %v", status, err)
	}
	var stats struct {
		Pool struct {
			Compression struct {
				BytesIn, BytesOut, FramesCompressed, StreamResets uint64
				Uncompressed                                      map[string]uint64
				Connections                                       int64
			} `json:"compression"`
		} `json:"pool"`
	}
	if err := json.Unmarshal(body, &stats); err != nil {
		t.Fatal(err)
	}
	z := stats.Pool.Compression
	if z.Connections != 3 || z.FramesCompressed < 300 || z.BytesOut >= z.BytesIn || z.Uncompressed["below_min_size"] == 0 {
		t.Fatalf("compression stats %s", body)
	}
	if mode == "shared_stream" && (z.StreamResets < 10 || z.Uncompressed["joining"] == 0) {
		t.Fatalf("shared stream stats %s", body)
	}
	t.Logf("%s: %d frames compressed, %d -> %d payload bytes, uncompressed %v", mode, z.FramesCompressed, z.BytesIn, z.BytesOut, z.Uncompressed)
}
