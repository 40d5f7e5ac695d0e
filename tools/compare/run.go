package compare

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// ErrNotReady is wrapped when a client cannot connect or subscribe within
// Config.ReadyTimeout, or its subscription is rejected.
var ErrNotReady = errors.New("compare: client not ready")

// stream is one side's client. Its reader goroutine is the only reader; the
// subscribe frame and pings are written by Run's goroutines one at a time.
type stream struct {
	side     Side
	url      string
	compress bool // offer permessage-deflate
	ws       *websocket.Conn
	ready    chan time.Time // receives the ready time once
	lost     chan error     // receives the read error unless closing
	done     chan struct{}  // closed when the reader returns
	closing  atomic.Bool
}

// Run compares the two endpoints as configured and returns the report. An
// error means no comparison took place (bad configuration, an endpoint
// unreachable or refusing the subscription); a lost connection during the
// run ends it early and is reported in Report.Problems. Cancelling ctx ends
// the window early and still returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := NewMatcher(cfg.Subscribe, cfg.Count, cfg.MaxDiffs)

	streams := [2]*stream{
		{side: Legacy, url: cfg.LegacyURL},
		{side: Proxy, url: cfg.ProxyURL, compress: cfg.ProxyCompression},
	}
	dialCtx, cancelDial := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancelDial()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.dial(dialCtx, cfg.ReadyTimeout)
		}()
	}
	wg.Wait()
	defer func() {
		for _, s := range streams {
			s.close()
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	for _, s := range streams {
		s.done = make(chan struct{})
		go s.read(m, cfg.Subscribe.Mode)
		if msg := cfg.Subscribe.Message(); msg != nil {
			_ = s.ws.SetWriteDeadline(time.Now().Add(cfg.ReadyTimeout))
			if err := s.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				return nil, fmt.Errorf("%w: %s: subscribe: %w", ErrNotReady, s.side, err)
			}
		}
	}

	var ready time.Time
	for _, s := range streams {
		select {
		case at := <-s.ready:
			if at.After(ready) {
				ready = at
			}
		case err := <-s.lost:
			return nil, fmt.Errorf("%w: %s (%s): %w", ErrNotReady, s.side, s.url, err)
		case <-dialCtx.Done():
			return nil, fmt.Errorf("%w: %s (%s) not ready within %s", ErrNotReady, s.side, s.url, cfg.ReadyTimeout)
		}
	}
	start := ready.Add(cfg.WarmUp)
	m.Open(start)
	// Probe the control replies the same way on both sides: a frame that is
	// not JSON (an error frame), an unknown type (silence) and a ping.
	for _, s := range streams {
		for _, probe := range controlProbes {
			_ = s.ws.SetWriteDeadline(time.Now().Add(cfg.ReadyTimeout))
			if err := s.ws.WriteMessage(websocket.TextMessage, []byte(probe)); err != nil {
				return nil, fmt.Errorf("%w: %s: probe: %w", ErrNotReady, s.side, err)
			}
		}
	}

	pingCtx, stopPing := context.WithCancel(ctx)
	defer stopPing()
	for _, s := range streams {
		go s.ping(pingCtx, cfg.PingInterval)
	}

	limit := cfg.Duration
	if limit == 0 {
		limit = cfg.MaxDuration
	}
	windowEnd := time.NewTimer(time.Until(start.Add(limit)))
	defer windowEnd.Stop()
	progress := time.NewTicker(cfg.ProgressInterval)
	defer progress.Stop()
	var problems []string
	showProgress := func(phase string) {
		if cfg.Progress == nil {
			return
		}
		p := m.Progress()
		end := "\n"
		if cfg.ProgressCR {
			end = "\r"
		}
		fmt.Fprintf(cfg.Progress, "compare %s %6.1fs  legacy %d  proxy %d  matched %d  pending %d  out-of-filter %d%s",
			phase, time.Since(start).Seconds(), p.Legacy, p.Proxy, p.Matched, p.Pending, p.OutOfFilter, end)
	}

window:
	for {
		select {
		case <-windowEnd.C:
			break window
		case <-m.Reached():
			break window
		case <-ctx.Done():
			break window
		case err := <-streams[Legacy].lost:
			problems = append(problems, fmt.Sprintf("legacy connection lost: %v", err))
			break window
		case err := <-streams[Proxy].lost:
			problems = append(problems, fmt.Sprintf("proxy connection lost: %v", err))
			break window
		case <-progress.C:
			showProgress("window")
		}
	}
	closedAt := time.Now()
	if closedAt.Before(start) {
		problems = append(problems, "stopped before the window opened")
	}
	m.Close(closedAt)

	// Grace: wait for the counterparts of in-window messages.
	grace := time.NewTimer(cfg.Grace)
	defer grace.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
grace:
	for len(problems) == 0 && ctx.Err() == nil && m.Pending() > 0 {
		select {
		case <-grace.C:
			break grace
		case <-ctx.Done():
			break grace
		case <-poll.C:
		case <-progress.C:
			showProgress("grace ")
		}
	}
	showProgress("done  ")
	if cfg.Progress != nil && cfg.ProgressCR {
		fmt.Fprintln(cfg.Progress)
	}
	for _, s := range streams {
		s.close()
	}

	r := m.Report(cfg.MinParity)
	r.LegacyURL, r.ProxyURL = cfg.LegacyURL, cfg.ProxyURL
	for _, p := range problems {
		r.AddProblem(p)
	}
	return r, nil
}

func (s *stream) dial(ctx context.Context, timeout time.Duration) error {
	d := websocket.Dialer{HandshakeTimeout: timeout, EnableCompression: s.compress}
	ws, resp, err := d.DialContext(ctx, s.url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return fmt.Errorf("%w: %s: dial %s: %w", ErrNotReady, s.side, s.url, err)
	}
	if s.compress && !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		_ = ws.Close()
		return fmt.Errorf("%w: %s: %s did not agree to permessage-deflate", ErrNotReady, s.side, s.url)
	}
	s.ws = ws
	s.ready = make(chan time.Time, 1)
	s.lost = make(chan error, 1)
	return nil
}

// controlProbes are sent to both servers once both are ready; their
// replies are compared as control frames.
var controlProbes = []string{`not json`, `{"type":"unknown"}`, `{"type":"ping"}`}

// read feeds every frame to m. The stream is ready at its first frame
// (ModeNone: the server has registered the client by the time it writes
// anything; the legacy server with a filter, which it never answered) or
// at the "subscribed" reply.
func (s *stream) read(m *Matcher, mode Mode) {
	defer close(s.done)
	ready := false
	for {
		_, b, err := s.ws.ReadMessage()
		if err != nil {
			if !s.closing.Load() {
				s.lost <- err
			}
			return
		}
		// Stamped by the matcher, so that a window that closes before the
		// frame is recorded still waits for it (Matcher.Arrive).
		at := m.Arrive(s.side)
		typ := m.Observe(s.side, b, at)
		if ready {
			continue
		}
		switch {
		case mode == ModeNone, typ == "subscribed", mode == ModeFilter && s.side == Legacy:
			ready = true
			s.ready <- at
		case typ == "error":
			if len(b) > 300 {
				b = b[:300]
			}
			s.lost <- fmt.Errorf("subscription rejected: %s", b)
			return
		}
	}
}

// ping sends the frontend's application ping until ctx ends.
func (s *stream) ping(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			msg := `{"type":"ping","timestamp":"` + now.UTC().Format("2006-01-02T15:04:05.000Z07:00") + `"}`
			_ = s.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := s.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				return
			}
		}
	}
}

// close ends the connection with 1000 and waits briefly for the reader.
func (s *stream) close() {
	if s.ws == nil || s.closing.Swap(true) {
		return
	}
	_ = s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = s.ws.Close()
	if s.done != nil {
		select {
		case <-s.done:
		case <-time.After(2 * time.Second):
		}
	}
}
