package dataflow_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"wsproxy/dataflow"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"valid", `{"exchange":"binance","symbol":"BTC/USDT","type":"trade","timestamp":1723190400000,"data":{"price":"1"}}`, nil},
		{"valid with extras", `{"exchange":"b","symbol":"S","type":"ticker","timestamp":1,"receivedAt":2,"data":[1],"metadata":{"x":1},"other":true}`, nil},
		{"not JSON", `hello`, dataflow.ErrNotJSON},
		{"array", `[1]`, dataflow.ErrNotJSON},
		{"empty", ``, dataflow.ErrNotJSON},
		{"truncated", `{"exchange":"b"`, dataflow.ErrInvalid},
		{"missing exchange", `{"symbol":"S","type":"trade","timestamp":1,"data":{}}`, dataflow.ErrMissingExchange},
		{"missing symbol", `{"exchange":"b","type":"trade","timestamp":1,"data":{}}`, dataflow.ErrMissingSymbol},
		{"missing type", `{"exchange":"b","symbol":"S","timestamp":1,"data":{}}`, dataflow.ErrMissingType},
		{"missing timestamp", `{"exchange":"b","symbol":"S","type":"trade","data":{}}`, dataflow.ErrMissingTime},
		{"string timestamp", `{"exchange":"b","symbol":"S","type":"trade","timestamp":"x","data":{}}`, dataflow.ErrInvalid},
		{"missing data", `{"exchange":"b","symbol":"S","type":"trade","timestamp":1}`, dataflow.ErrMissingData},
		{"null data", `{"exchange":"b","symbol":"S","type":"trade","timestamp":1,"data":null}`, dataflow.ErrMissingData},
		{"blank exchange", `{"exchange":"  ","symbol":"S","type":"trade","timestamp":1,"data":{}}`, dataflow.ErrMissingExchange},
		{"too long", `{"exchange":"` + string(make([]byte, 0)) + `bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","symbol":"S","type":"trade","timestamp":1,"data":{}}`, dataflow.ErrFieldTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			md, err := dataflow.Decode([]byte(tc.in))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if md.Exchange == "" || len(md.Data) == 0 {
					t.Fatalf("decoded %+v", md)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, dataflow.ErrInvalid) {
				t.Fatalf("err = %v, want %v (and ErrInvalid)", err, tc.want)
			}
		})
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
	if err := oc.Output(ctx, dataflow.MarketData{Exchange: "b"}); !errors.Is(err, dataflow.ErrInvalid) {
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
	d := dataflow.NewDemo(dataflow.DemoConfig{Enabled: true, Interval: time.Millisecond, Symbols: []string{"BTC/USDT", "XRP/USDT"}})
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
