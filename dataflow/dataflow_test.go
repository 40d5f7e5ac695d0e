package dataflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"wsproxy/compat"
	"wsproxy/dataflow"
	"wsproxy/internal/configtest"
)

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"not JSON", `hello`, dataflow.ErrNotJSON},
		{"array", `[1]`, dataflow.ErrNotJSON},
		{"string", `"x"`, dataflow.ErrNotJSON},
		{"null", `null`, dataflow.ErrNotJSON},
		{"empty", ``, dataflow.ErrNotJSON},
		{"truncated", `{"exchange":"b"`, dataflow.ErrInvalid},
		{"exchange not a string", `{"exchange":1,"symbol":"S","type":"trade","timestamp":1,"data":{}}`, dataflow.ErrFieldType},
		{"too long", `{"exchange":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","symbol":"S","type":"trade","timestamp":1,"data":{}}`, dataflow.ErrFieldTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dataflow.Decode([]byte(tc.in))
			if !errors.Is(err, tc.want) || !errors.Is(err, dataflow.ErrInvalid) {
				t.Fatalf("err = %v, want %v (and ErrInvalid)", err, tc.want)
			}
		})
	}
}

// TestDecodeLenientAsLegacy checks the legacy collector's rules for the
// pipeline's message (PROTOCOL.md): nothing routable is dropped, defaults
// fill what is missing, and the rest passes through as it was.
func TestDecodeLenientAsLegacy(t *testing.T) {
	iso := regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$`)
	tests := []struct {
		name    string
		in      string
		check   func(t *testing.T, md dataflow.MarketData, frame string)
		exchDef string
	}{
		{"fractional timestamp passes through", `{"exchange":"b","symbol":"S","type":"trade","timestamp":1723190400000.5,"data":{}}`,
			func(t *testing.T, md dataflow.MarketData, f string) { wantIn(t, f, `"timestamp":1723190400000.5}`) }, ""},
		{"ISO timestamp passes through", `{"exchange":"b","symbol":"S","type":"trade","timestamp":"2024-08-09T08:00:00.000Z","data":{}}`,
			func(t *testing.T, md dataflow.MarketData, f string) {
				wantIn(t, f, `"timestamp":"2024-08-09T08:00:00.000Z"}`)
			}, ""},
		{"missing timestamp is ISO now", `{"exchange":"b","symbol":"S","type":"trade","data":{}}`,
			func(t *testing.T, md dataflow.MarketData, f string) {
				if !iso.Match(md.TimestampRaw) {
					t.Fatalf("timestamp %s, want ISO now", md.TimestampRaw)
				}
			}, ""},
		{"zero timestamp is ISO now", `{"exchange":"b","symbol":"S","type":"trade","timestamp":0,"data":{}}`,
			func(t *testing.T, md dataflow.MarketData, f string) {
				if !iso.Match(md.TimestampRaw) {
					t.Fatalf("timestamp %s, want ISO now", md.TimestampRaw)
				}
			}, ""},
		{"null data is forwarded as null", `{"exchange":"b","symbol":"S","type":"trade","timestamp":1,"data":null}`,
			func(t *testing.T, md dataflow.MarketData, f string) {
				wantIn(t, f, `"symbol":"S","data":null,"timestamp":1}`)
			}, ""},
		{"missing data stays absent", `{"exchange":"b","symbol":"S","type":"trade","timestamp":1}`,
			func(t *testing.T, md dataflow.MarketData, f string) { wantIn(t, f, `"symbol":"S","timestamp":1}`) }, ""},
		{"missing symbol stays absent", `{"exchange":"b","type":"trade","timestamp":1,"data":{}}`,
			func(t *testing.T, md dataflow.MarketData, f string) { wantIn(t, f, `"exchange":"b","data":{},`) }, ""},
		{"missing type is market_data", `{"exchange":"b","symbol":"S","timestamp":1,"data":{}}`,
			func(t *testing.T, md dataflow.MarketData, f string) {
				wantIn(t, f, `{"type":"market_data","payload":{"type":"market_data",`)
			}, ""},
		{"empty type is market_data", `{"exchange":"b","symbol":"S","type":"","timestamp":1,"data":{}}`,
			func(t *testing.T, md dataflow.MarketData, f string) { wantIn(t, f, `{"type":"market_data",`) }, ""},
		{"missing exchange takes the source's default", `{"symbol":"S","type":"trade","timestamp":1,"data":{}}`,
			func(t *testing.T, md dataflow.MarketData, f string) {
				wantIn(t, f, `"exchange":"binance","symbol":"S"`)
			}, "binance"},
		{"unknown fields, receivedAt and metadata are not forwarded", `{"exchange":"b","symbol":"S","type":"trade","timestamp":1,"receivedAt":2.5,"foo":1,"data":{},"metadata":{"x":1}}`,
			func(t *testing.T, md dataflow.MarketData, f string) {
				if f != `{"type":"trade","payload":{"type":"trade","exchange":"b","symbol":"S","data":{},"timestamp":1},"timestamp":9}` {
					t.Fatalf("frame %s", f)
				}
				if md.ReceivedAt != 2 || string(md.Metadata) != `{"x":1}` {
					t.Fatalf("decoded %+v", md)
				}
			}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			md, err := dataflow.DecodeWith([]byte(tc.in), tc.exchDef)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tc.check(t, md, string(compat.AppendData(nil, &md, 9)))
		})
	}
}

func wantIn(t *testing.T, frame, part string) {
	t.Helper()
	if !strings.Contains(frame, part) {
		t.Fatalf("frame %s does not contain %s", frame, part)
	}
}

func TestDecodeKeepsDataBytes(t *testing.T) {
	md, err := dataflow.Decode([]byte(`{"exchange":"b","symbol":"S","type":"trade","timestamp":1,"data":{"b": 1,  "a":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(md.Data) != `{"b": 1,  "a":"x"}` {
		t.Fatalf("data re-encoded: %s", md.Data)
	}
}

// sink records deliveries; full makes it refuse.
type sink struct {
	mu   sync.Mutex
	got  []*dataflow.MarketData
	full bool
}

func (s *sink) Deliver(md *dataflow.MarketData) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return false
	}
	s.got = append(s.got, md)
	return true
}

func (s *sink) byType() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int{}
	for _, md := range s.got {
		m[md.Type]++
	}
	return m
}

func TestInProcessOutputChannel(t *testing.T) {
	ip := dataflow.NewInProcess("collector")
	var oc dataflow.OutputChannel = ip
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &sink{}
	go func() { _ = ip.Run(ctx, s) }()
	deadline := time.Now().Add(5 * time.Second)
	for !oc.Status().Connected {
		if time.Now().After(deadline) {
			t.Fatal("not connected")
		}
		time.Sleep(time.Millisecond)
	}
	good := dataflow.MarketData{Exchange: "b", Symbol: "S", Type: "trade", Timestamp: 5, Data: []byte(`{}`)}
	if err := oc.Output(ctx, good); err != nil {
		t.Fatal(err)
	}
	if err := oc.Output(ctx, dataflow.MarketData{Exchange: strings.Repeat("b", 65)}); !errors.Is(err, dataflow.ErrInvalid) {
		t.Fatalf("invalid message: %v", err)
	}
	s.mu.Lock()
	s.full = true
	s.mu.Unlock()
	if err := oc.Output(ctx, good); !errors.Is(err, dataflow.ErrBackpressure) {
		t.Fatalf("full sink: %v", err)
	}
	st := oc.Status()
	if st.MessagesSent != 1 || st.Errors != 2 || st.Type != "inprocess" || st.Name != "collector" || !st.Enabled || st.Health != "healthy" || st.LastActivity == 0 || st.ID == "" {
		t.Fatalf("status = %+v", st)
	}
	if s.got[0].ReceivedAt == 0 {
		t.Fatal("receivedAt not stamped")
	}
	_ = oc.Close()
	if err := oc.Output(ctx, good); !errors.Is(err, dataflow.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if oc.Status().Enabled {
		t.Fatal("enabled after Close")
	}
}

func TestDemoFeedProducesEveryType(t *testing.T) {
	d, err := dataflow.NewDemo(configtest.Demo(dataflow.DemoConfig{Enabled: true, Interval: time.Millisecond, Symbols: []string{"BTC/USDT", "XRP/USDT"}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sink{}
	done := make(chan struct{})
	go func() { _ = d.Run(ctx, s); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := s.byType()
		if m["trade"] >= 20 && m["ticker"] > 0 && m["depth"] > 0 && m["kline_1m"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo produced %v", m)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, md := range s.got {
		if err := md.Validate(); err != nil || md.Exchange != "demo" {
			t.Fatalf("demo message %+v: %v", md, err)
		}
	}
	if st := d.Stats(); st.Received != uint64(len(s.got)) || st.Connected {
		t.Fatalf("stats %+v after stop, %d delivered", st, len(s.got))
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"exchange":"binance","symbol":"BTC/USDT","type":"trade","timestamp":1723190400000,"data":{"price":"1"}}`))
	f.Add([]byte(`{"exchange":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := dataflow.Decode(b)
		if err == nil {
			if verr := md.Validate(); verr != nil {
				t.Fatalf("Decode accepted what Validate rejects: %v", verr)
			}
		} else if !errors.Is(err, dataflow.ErrInvalid) {
			t.Fatalf("error not wrapping ErrInvalid: %v", err)
		}
	})
}

func TestDemoGeneratorTicks(t *testing.T) {
	g := dataflow.NewDemoGenerator(configtest.Demo(dataflow.DemoConfig{Exchange: "x", Symbols: []string{"BTC/USDT", "XRP/USDT"}}))
	now := time.UnixMilli(1723190400123)
	var types []string
	for tick := 1; tick <= 10; tick++ {
		for _, md := range g.Tick(now) {
			if md.Exchange != "x" || md.Timestamp != now.UnixMilli() {
				t.Fatalf("tick %d: %+v", tick, md)
			}
			if !json.Valid(md.Data) {
				t.Fatalf("tick %d: data %s is not JSON", tick, md.Data)
			}
			types = append(types, md.Symbol+" "+md.Type)
		}
	}
	// 10 ticks × 2 symbols: a trade each, ticker and depth on ticks 5 and
	// 10, a kline on tick 10.
	got := strings.Join(types[len(types)-8:], ",")
	want := "BTC/USDT trade,BTC/USDT ticker,BTC/USDT depth,BTC/USDT kline_1m,XRP/USDT trade,XRP/USDT ticker,XRP/USDT depth,XRP/USDT kline_1m"
	if len(types) != 20+8+2 || got != want {
		t.Fatalf("%d messages, last tick %q; want 30, %q", len(types), got, want)
	}
}
