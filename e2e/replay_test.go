package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"wsproxy/internal/transcript"
)

// Kept lists every difference from the recorded legacy servers that wsproxy
// keeps on purpose, with its reason. README "Compatibility" has the same
// table. Nothing else may differ: the replay fails on any other frame or
// field.
var Kept = []transcript.Kept{
	{
		Phases: `^A-`, FieldsOf: "welcome", Fields: []string{"payload.proxyVersion"},
		What:   "welcome carries B's proxyVersion",
		Reason: "purely additive (B's field); legacy clients ignore unknown keys",
	},
	{
		Phases: `^A-`, FieldsOf: "error", Fields: []string{"payload.code"},
		What:   `the "Invalid message format" error carries a machine-readable code (INVALID_MESSAGE)`,
		Reason: "purely additive; the message text is A's",
	},
	{
		Phases: `^B-`, Fields: []string{"timestamp"},
		What:   "every frame has a top-level timestamp, B's welcome, pong, subscribed, unsubscribed and error had none",
		Reason: "A's shape is the default; a field more is additive",
	},
	{
		Phases: `^A-(5\.|8\.1$|9\.1$|10\.1$)`,
		Extra:  isFilterReply,
		What:   "filter-form subscribe and unsubscribe are answered (subscribed with filterId and filter, unsubscribed)",
		Reason: "B's filter protocol (PROTOCOL.md); A ignored such frames without a reply",
	},
	{
		Phases: `^A-5\.1$`,
		Missing: notData(func(f transcript.Frame) bool {
			return exch(f) == "binance" && sym(f) == "BTC/USDT" && typ(f) == "trade"
		}),
		What:   "a filtered client gets only the messages its filter matches",
		Reason: "B's filter protocol; A ignored filters and broadcast everything",
	},
	{
		Phases:  `^A-5\.5$`,
		Missing: notData(func(f transcript.Frame) bool { return typ(f) == "bookTicker" }),
		What:    "a filtered client gets only the messages its filter matches",
		Reason:  "B's filter protocol; A ignored filters and broadcast everything",
	},
	{
		Phases:  `^A-5\.7$`,
		Missing: notData(func(f transcript.Frame) bool { return sym(f) == "BTC/USDT" || typ(f) == "trade" }),
		What:    "a filtered client gets only the messages its filters match",
		Reason:  "B's filter protocol; A ignored filters and broadcast everything",
	},
	{
		Phases: `^[AB]-5\.11$`,
		Extra:  isError("INVALID_FILTER"),
		What:   `a filter field that is not an array of strings ("symbols":"BTC/USDT,ETH/USDT") gets an INVALID_FILTER error and no filter`,
		Reason: "B's substring test on a string is accidental (USDT matched); A ignored it; the extension error tells the client",
	},
	{
		Phases:  `^B-5\.11$`,
		Missing: func(f transcript.Frame) bool { return typ(f) == "subscribed" || isData(f) },
		What:    "so that client gets no subscribed reply and, with compat.unfiltered_receive_all false, no data",
		Reason:  "follows from the row above",
	},
	{
		Phases: `^B-5\.(2|3)$`,
		Extra:  func(f transcript.Frame) bool { return isData(f) && sym(f) == "BTC/USDT" },
		What:   "symbols match after upper-casing and removing / - _ (BTCUSDT and btc/usdt match BTC/USDT)",
		Reason: "extension that only widens a match (PROTOCOL.md); B compared exactly",
	},
	{
		Phases: `^B-5\.4$`,
		Extra:  func(f transcript.Frame) bool { return isData(f) && typ(f) == "kline_1m" },
		What:   "dataTypes kline also matches every kline_* type",
		Reason: "extension that only widens a match (PROTOCOL.md); B compared exactly",
	},
	{
		Phases: `^B-5\.10$`,
		Extra:  func(f transcript.Frame) bool { return isData(f) && exch(f) == "binance" },
		What:   "exchange and type match case-insensitively (BINANCE matches binance)",
		Reason: "extension that only widens a match (PROTOCOL.md); B compared exactly",
	},
	{
		Phases:   `^B-5\.`,
		FieldsOf: "", Fields: []string{"payload.metadata.routedBy", "payload.metadata.routedAt", "payload.metadata.channelId", "payload.metadata.channelType"},
		What:   "with compat.forward_metadata, metadata is the pipeline's as it is, without B's routedBy/routedAt/channelId/channelType",
		Reason: "those four describe B's internal message router, which wsproxy does not have",
	},
	{
		Phases:  `^A-7\.10$`,
		Missing: func(f transcript.Frame) bool { return typ(f) == "pong" || f.Kind == "close" || isData(f) },
		Extra:   func(f transcript.Frame) bool { return f.Kind == "close" && f.Code == 1009 },
		What:    "a client frame over max_payload (1 MiB) closes the connection with 1009, A accepted up to 100 MiB",
		Reason:  "bounds the memory one client can make the server hold (B's limit); configurable",
	},
	{
		Phases:  `^A-10\.1$`,
		Missing: func(f transcript.Frame) bool { return f.Kind == "ping" },
		Extra:   func(f transcript.Frame) bool { return f.Kind == "ping" },
		What:    "heartbeat pings are checked by count, not position (the replay runs the 100-s scenario 30 times faster: heartbeat_interval 1s, connection_timeout 2s)",
		Reason:  "their cadence is a timer, so their place among other frames depends on scheduling",
	},
	{
		Phases: `^A-10\.1$`, Client: 2,
		Missing: func(f transcript.Frame) bool { return f.Kind == "close" },
		Extra:   func(f transcript.Frame) bool { return f.Kind == "close" && f.Code == 1006 },
		What:    "a connection silent past connection_timeout is closed (the socket is shut); A only dropped it from its registry and left the socket open",
		Reason:  "A's silent drop leaked the socket and left the client waiting for data that never came; a closed connection makes the frontend reconnect",
	},
}

func isData(f transcript.Frame) bool {
	_, ok := f.Get("payload.data")
	_, hasSym := f.Get("payload.symbol")
	_, hasExch := f.Get("payload.exchange")
	return f.Kind == "text" && (ok || hasSym || hasExch) && f.Type() != "subscribed"
}

func typ(f transcript.Frame) string  { return f.Type() }
func sym(f transcript.Frame) string  { return f.Str("payload.symbol") }
func exch(f transcript.Frame) string { return f.Str("payload.exchange") }

// notData matches data frames that keep fails.
func notData(keep func(transcript.Frame) bool) func(transcript.Frame) bool {
	return func(f transcript.Frame) bool { return isData(f) && !keep(f) }
}

func isFilterReply(f transcript.Frame) bool {
	if t := f.Type(); t != "subscribed" && t != "unsubscribed" {
		return false
	}
	_, ch := f.Get("payload.channel")
	return !ch
}

func isError(code string) func(transcript.Frame) bool {
	return func(f transcript.Frame) bool { return f.Type() == "error" && f.Str("payload.code") == code }
}

// procInstance is a fresh wsproxy process fed through HTTP ingest.
type procInstance struct {
	p *proc
}

func (pi *procInstance) URL(path string) string { return pi.p.url(path) }

func (pi *procInstance) Inject(t testing.TB, msgs []json.RawMessage) {
	t.Helper()
	var body bytes.Buffer
	for _, m := range msgs {
		body.Write(m)
		body.WriteByte('\n')
	}
	resp, err := http.Post(pi.p.httpURL("/api/dataflow/ingest"), "application/x-ndjson", &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct {
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
		Errors   []struct {
			Reason string `json:"reason"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != 200 || res.Accepted != len(msgs) {
		t.Fatalf("ingest of %d messages: status %d, %+v, %v", len(msgs), resp.StatusCode, res, err)
	}
}

func (pi *procInstance) Forwarded(t testing.TB) uint64 {
	t.Helper()
	var st struct {
		Dataflow struct {
			MessagesForwarded uint64 `json:"messagesForwarded"`
		} `json:"dataflow"`
	}
	getJSON(t, pi.p.httpURL("/api/websocket/stats"), &st)
	return st.Dataflow.MessagesForwarded
}

func (pi *procInstance) Shutdown(t testing.TB) {
	t.Helper()
	if err := pi.p.stop(t, 30*time.Second); err != nil {
		t.Fatalf("wsproxy exit: %v", err)
	}
}

// TestReplayLegacyHeartbeat replays scenario 10 of A (heartbeat and idle
// timeout over 100 s) 30 times faster, with the heartbeat scaled alike.
func TestReplayLegacyHeartbeat(t *testing.T) {
	phases, err := transcript.Load("A", 10)
	if err != nil {
		t.Fatal(err)
	}
	ph := &phases[0]
	p := startProc(t, append(append([]string{}, replayEnv...), "WSPROXY_HEARTBEAT_INTERVAL=1s", "WSPROXY_CONNECTION_TIMEOUT=2s"))
	got := transcript.Replay(t, ph, &procInstance{p: p}, transcript.Options{Silent: map[int]bool{2: true, 3: true}, TimeScale: 1.0 / 30})
	var problems []string
	for _, c := range ph.Clients() {
		problems = append(problems, transcript.Compare(ph, c, ph.Expected(c), got[c], Kept)...)
		pings := 0
		for _, f := range got[c] {
			if f.Kind == "ping" {
				pings++
			}
		}
		if c != 2 && pings < 2 {
			problems = append(problems, fmt.Sprintf("client %d got %d heartbeat pings, want at least 2 (A sent 3)", c, pings))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s: %d differences:\n%s", ph.Name(), len(problems), strings.Join(problems, "\n"))
	}
}

// replayEnv is what every replay needs besides the default config: no demo
// feed, and the HTTP ingest as the pipeline (its default exchange is the
// recorder's adapter name).
var replayEnv = []string{
	"WSPROXY_SOURCES_DEMO_ENABLED=false",
	"WSPROXY_SOURCES_INGEST_ENABLED=true",
	"WSPROXY_SOURCES_INGEST_DEFAULT_EXCHANGE=binance",
}

// TestReplayLegacyTranscripts replays every recorded scenario of server A
// against the binary with the default config, and B's filter scenario (5)
// with compat.unfiltered_receive_all false, comparing each client's frames
// with the recording.
func TestReplayLegacyTranscripts(t *testing.T) {
	type run struct {
		server    string
		scenarios []int
		env       []string
	}
	runs := []run{
		{"A", []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil},
		{"B", []int{5}, []string{"WSPROXY_COMPAT_UNFILTERED_RECEIVE_ALL=false", "WSPROXY_COMPAT_FORWARD_METADATA=true"}},
	}
	for _, r := range runs {
		for _, n := range r.scenarios {
			phases, err := transcript.Load(r.server, n)
			if err != nil {
				t.Fatal(err)
			}
			for i := range phases {
				ph := &phases[i]
				t.Run(ph.Name(), func(t *testing.T) {
					p := startProc(t, append(append([]string{}, replayEnv...), r.env...))
					got := transcript.Replay(t, ph, &procInstance{p: p}, transcript.Options{})
					var problems []string
					for _, c := range ph.Clients() {
						problems = append(problems, transcript.Compare(ph, c, ph.Expected(c), got[c], Kept)...)
					}
					if len(problems) > 0 {
						var b strings.Builder
						for _, c := range ph.Clients() {
							fmt.Fprintf(&b, "client %d received:\n", c)
							for _, f := range got[c] {
								fmt.Fprintf(&b, "  %s\n", f)
							}
						}
						t.Errorf("%s %s: %d differences:\n%s\n%s", ph.Name(), ph.Title, len(problems), strings.Join(problems, "\n"), b.String())
					}
				})
			}
		}
	}
}
