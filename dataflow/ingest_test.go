package dataflow_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"wsproxy/dataflow"
	"wsproxy/internal/configtest"
	"wsproxy/internal/wstest"
)

// ingestServer serves in's handler over an in-memory listener.
func ingestServer(t testing.TB, in *dataflow.Ingest) *fasthttp.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: in.Handler(), MaxRequestBodySize: dataflow.MaxIngestBody}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

type ingestCall struct {
	method  string
	headers map[string]string
	body    string
}

func post(t testing.TB, c *fasthttp.Client, call ingestCall) (int, dataflow.IngestResult) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://ingest/api/dataflow/ingest")
	req.Header.SetMethod(call.method)
	for k, v := range call.headers {
		req.Header.Set(k, v)
	}
	req.SetBodyString(call.body)
	if err := c.DoTimeout(req, resp, wait); err != nil {
		t.Fatal(err)
	}
	var res dataflow.IngestResult
	if err := json.Unmarshal(resp.Body(), &res); err != nil {
		t.Fatalf("answer %q: %v", resp.Body(), err)
	}
	if string(resp.Header.ContentType()) != "application/json" {
		t.Fatalf("content type %q", resp.Header.ContentType())
	}
	return resp.StatusCode(), res
}

func TestIngest(t *testing.T) {
	ndjson := msg(1) + "\n" + msg(2) + "\r\n\n" + msg(3) + "\n"
	array := "[" + msg(1) + "," + msg(2) + "]"
	mixed := msg(1) + "\nnot json\n" + `{"exchange":7,"symbol":"S","type":"trade","timestamp":1}` + "\n" + msg(2)
	tests := []struct {
		name         string
		call         ingestCall
		token        string
		full         bool
		status       int
		accepted     int
		rejected     int
		errLines     []int
		reasonSubstr string
	}{
		{name: "ndjson", call: ingestCall{body: ndjson}, status: 200, accepted: 3},
		{name: "json array", call: ingestCall{body: array}, status: 200, accepted: 2},
		{name: "empty array", call: ingestCall{body: "[]"}, status: 200},
		{name: "bad lines are listed by number", call: ingestCall{body: mixed}, status: 200, accepted: 2, rejected: 2,
			errLines: []int{2, 3}, reasonSubstr: "must be strings"},
		{name: "bad array element", call: ingestCall{body: "[" + msg(1) + `,{"type":5},7]`}, status: 200, accepted: 1, rejected: 2,
			errLines: []int{2, 3}},
		{name: "array that is not JSON", call: ingestCall{body: "[" + msg(1) + ","}, status: 400, errLines: []int{0}, reasonSubstr: "not a valid JSON array"},
		{name: "empty body", call: ingestCall{body: "  \n"}, status: 400, errLines: []int{0}, reasonSubstr: "empty body"},
		{name: "too large", call: ingestCall{body: strings.Repeat(msg(1)+"\n", 200)}, status: 413, errLines: []int{0}, reasonSubstr: "max_body_bytes"},
		{name: "GET", call: ingestCall{method: "GET"}, status: 405, errLines: []int{0}},
		{name: "token missing", token: "s3cret", call: ingestCall{body: msg(1)}, status: 401, errLines: []int{0}},
		{name: "token wrong", token: "s3cret", call: ingestCall{body: msg(1), headers: map[string]string{"Authorization": "Bearer nope"}}, status: 401, errLines: []int{0}},
		{name: "token as bearer", token: "s3cret", call: ingestCall{body: msg(1), headers: map[string]string{"Authorization": "Bearer s3cret"}}, status: 200, accepted: 1},
		{name: "token as header", token: "s3cret", call: ingestCall{body: msg(1), headers: map[string]string{"X-Ingest-Token": "s3cret"}}, status: 200, accepted: 1},
		{name: "proxy busy", full: true, call: ingestCall{body: ndjson}, status: 200, rejected: 3, errLines: []int{1, 2, 4}, reasonSubstr: "busy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := dataflow.NewIngest(configtest.Ingest(dataflow.IngestConfig{Enabled: true, Token: tc.token, MaxBodyBytes: 4096}))
			if err != nil {
				t.Fatal(err)
			}
			s := &sink{full: tc.full}
			run(t, in, s)
			wstest.Eventually(t, wait, "running", func() bool { return in.Stats().Connected })
			c := ingestServer(t, in)
			if tc.call.method == "" {
				tc.call.method = "POST"
			}
			status, res := post(t, c, tc.call)
			if status != tc.status || res.Accepted != tc.accepted || res.Rejected != tc.rejected || len(res.Errors) != len(tc.errLines) {
				t.Fatalf("status %d, result %+v; want %d, accepted %d, rejected %d, error lines %v",
					status, res, tc.status, tc.accepted, tc.rejected, tc.errLines)
			}
			for i, l := range tc.errLines {
				if res.Errors[i].Line != l || res.Errors[i].Reason == "" {
					t.Fatalf("errors = %+v, want lines %v", res.Errors, tc.errLines)
				}
			}
			if tc.reasonSubstr != "" && !strings.Contains(res.Errors[len(res.Errors)-1].Reason, tc.reasonSubstr) {
				t.Fatalf("errors = %+v, want a reason with %q", res.Errors, tc.reasonSubstr)
			}
			if got := s.len(); got != tc.accepted {
				t.Fatalf("sink got %d messages, answer says %d accepted", got, tc.accepted)
			}
			st := in.Stats()
			if int(st.Rejected+st.Dropped) != tc.rejected {
				t.Fatalf("stats %+v, want %d rejected+dropped", st, tc.rejected)
			}
		})
	}
}

func TestIngestNotRunning(t *testing.T) {
	in, err := dataflow.NewIngest(configtest.Ingest(dataflow.IngestConfig{Enabled: true}))
	if err != nil {
		t.Fatal(err)
	}
	c := ingestServer(t, in)
	if status, res := post(t, c, ingestCall{method: "POST", body: msg(1)}); status != 503 || len(res.Errors) != 1 {
		t.Fatalf("status %d, %+v", status, res)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = in.Run(ctx, &sink{}); close(done) }()
	wstest.Eventually(t, wait, "running", func() bool { return in.Stats().Connected })
	cancel()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	if status, _ := post(t, c, ingestCall{method: "POST", body: msg(1)}); status != 503 {
		t.Fatalf("after stop: status %d", status)
	}
}

func TestIngestErrorListIsCapped(t *testing.T) {
	in, err := dataflow.NewIngest(configtest.Ingest(dataflow.IngestConfig{Enabled: true, MaxErrors: 3}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, in, &sink{})
	wstest.Eventually(t, wait, "running", func() bool { return in.Stats().Connected })
	status, res := post(t, ingestServer(t, in), ingestCall{method: "POST", body: strings.Repeat("x\n", 10)})
	if status != 200 || res.Rejected != 10 || len(res.Errors) != 3 {
		t.Fatalf("status %d, %+v", status, res)
	}
}

// FuzzIngestBody: any body gets a well-formed answer, and every line is
// either accepted or rejected.
func FuzzIngestBody(f *testing.F) {
	f.Add(msg(1) + "\n" + msg(2))
	f.Add("[" + msg(1) + ",1]")
	f.Add("\n\n{")
	f.Add("[")
	in, err := dataflow.NewIngest(configtest.Ingest(dataflow.IngestConfig{Enabled: true}))
	if err != nil {
		f.Fatal(err)
	}
	s := &sink{}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	go func() { _ = in.Run(ctx, s) }()
	wstest.Eventually(f, wait, "running", func() bool { return in.Stats().Connected })
	h := in.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		var rc fasthttp.RequestCtx
		rc.Request.Header.SetMethod("POST")
		rc.Request.SetBodyString(body)
		h(&rc)
		var res dataflow.IngestResult
		if err := json.Unmarshal(rc.Response.Body(), &res); err != nil {
			t.Fatalf("answer %q: %v", rc.Response.Body(), err)
		}
		switch rc.Response.StatusCode() {
		case 200:
			if res.Accepted+res.Rejected > strings.Count(body, "\n")+1 && !strings.HasPrefix(strings.TrimSpace(body), "[") {
				t.Fatalf("more results than lines: %+v", res)
			}
		case 400:
			if len(res.Errors) != 1 || res.Errors[0].Line != 0 {
				t.Fatalf("400 answer %+v", res)
			}
		default:
			t.Fatalf("status %d for %q", rc.Response.StatusCode(), body)
		}
	})
}
