package proxy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"wsproxy/config"
	"wsproxy/dataflow"
	"wsproxy/internal/configtest"
	"wsproxy/internal/natstest"
	"wsproxy/internal/redistest"
	"wsproxy/internal/wstest"
)

// benchBody is a trade of the collector's usual size (about 200 bytes).
func benchBody(i int, sent int64) []byte {
	return []byte(fmt.Sprintf(`{"exchange":"binance","symbol":"BTC/USDT","type":"trade","timestamp":%d,"receivedAt":%d,`+
		`"data":{"id":"%d","price":"50000.10","quantity":"0.01250000","side":"buy","timestamp":%d,"sent":%d,"seq":%d}}`,
		1723190400000+i, 1723190400001+i, i, 1723190400000+i, sent, i))
}

// benchFeed is one source under benchmark with the means to publish to it.
type benchFeed struct {
	src dataflow.Source
	// publish sends one message (latency benchmark).
	publish func(tb testing.TB, i int, body []byte)
	// external publishes n messages as fast as possible from a process of
	// its own; nil when the messages are stored beforehand (JetStream).
	external func(n int) *exec.Cmd
	// preload stores n messages before the source starts; nil when the
	// transport keeps no history.
	preload func(tb testing.TB, n int)
}

func benchFeeds(tb testing.TB, kind string) benchFeed {
	tb.Helper()
	switch kind {
	case "nats":
		ns := natstest.Start(tb)
		src, err := dataflow.NewNATS(configtest.NATS(dataflow.NATSConfig{URL: ns.URL}))
		if err != nil {
			tb.Fatal(err)
		}
		nc := ns.Conn(tb)
		return benchFeed{src: src,
			publish: func(tb testing.TB, _ int, body []byte) {
				if err := nc.Publish("market-data.trade.binance", body); err != nil {
					tb.Fatal(err)
				}
				_ = nc.Flush()
			},
			external: func(n int) *exec.Cmd { return publisherCmd("nats", ns.URL, "market-data.trade.binance", n) },
		}
	case "jetstream":
		ns := natstest.Start(tb)
		js := ns.JetStream(tb)
		natstest.CreateStream(tb, js, jetstream.StreamConfig{Name: "MD", Subjects: []string{"market-data.>"}, Storage: jetstream.FileStorage})
		src, err := dataflow.NewJetStream(configtest.JetStream(dataflow.JetStreamConfig{URL: ns.URL, Stream: "MD", Start: "first"}))
		if err != nil {
			tb.Fatal(err)
		}
		return benchFeed{src: src,
			publish: func(tb testing.TB, i int, body []byte) {
				if _, err := js.Publish(context.Background(), "market-data.trade.binance", body); err != nil {
					tb.Fatal(err)
				}
			},
			preload: func(tb testing.TB, n int) {
				for i := 0; i < n; {
					var acks []jetstream.PubAckFuture
					for k := 0; k < 1000 && i < n; k, i = k+1, i+1 {
						f, err := js.PublishAsync("market-data.trade.binance", benchBody(i, 0))
						if err != nil {
							tb.Fatal(err)
						}
						acks = append(acks, f)
					}
					for _, f := range acks {
						select {
						case <-f.Ok():
						case err := <-f.Err():
							tb.Fatal(err)
						}
					}
				}
			},
		}
	case "redis-pubsub":
		addr := redistest.Addr(tb)
		prefix := redistest.Prefix(tb)
		src, err := dataflow.NewRedisPubSub(configtest.Redis(dataflow.RedisConfig{Addr: addr, Pattern: prefix + "market-data-*"}))
		if err != nil {
			tb.Fatal(err)
		}
		rdb := redistest.Client(tb, addr)
		ch := prefix + "market-data-trade-binance"
		return benchFeed{src: src,
			publish: func(tb testing.TB, _ int, body []byte) {
				if err := rdb.Publish(context.Background(), ch, body).Err(); err != nil {
					tb.Fatal(err)
				}
			},
			external: func(n int) *exec.Cmd { return publisherCmd("redis", addr, ch, n) },
		}
	}
	tb.Fatalf("unknown feed %s", kind)
	return benchFeed{}
}

var benchKinds = []string{"nats", "jetstream", "redis-pubsub"}

// publisherCmd runs this test binary again as a publisher (TestIngestPublisher).
func publisherCmd(kind, addr, subject string, n int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestIngestPublisher$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WSPROXY_BENCH_PUBLISH="+strings.Join([]string{kind, addr, subject, strconv.Itoa(n)}, " "))
	cmd.Stderr = os.Stderr
	return cmd
}

// TestIngestPublisher is the publisher process of BenchmarkSourceIngest,
// which runs the test binary again with WSPROXY_BENCH_PUBLISH set so that
// the benchmark's CPU time is the source's and the dispatcher's alone. It
// is skipped otherwise.
func TestIngestPublisher(t *testing.T) {
	spec := strings.Fields(os.Getenv("WSPROXY_BENCH_PUBLISH"))
	if len(spec) != 4 {
		t.Skip("the publisher process of BenchmarkSourceIngest")
	}
	kind, addr, subject := spec[0], spec[1], spec[2]
	n, err := strconv.Atoi(spec[3])
	if err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "nats":
		nc, err := nats.Connect(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		for i := range n {
			if err := nc.Publish(subject, benchBody(i, 0)); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	case "redis":
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		ctx := context.Background()
		for i := 0; i < n; {
			pipe := rdb.Pipeline()
			for k := 0; k < 256 && i < n; k, i = k+1, i+1 {
				pipe.Publish(ctx, subject, benchBody(i, 0))
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	default:
		t.Fatalf("unknown publisher %s", kind)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSourceIngest measures what each source sustains into the
// dispatcher, side by side in one run: b.N messages published as fast as
// possible (core NATS and Redis Pub/Sub from a publisher process of its
// own; JetStream stored beforehand and read from the first sequence), until
// the dispatcher has forwarded them. Reported: msgs/s of wall time, msgs
// per CPU-second of this process (the source, its client library and the
// dispatcher, i.e. per core), and the share lost (dropped by the source or
// its library, or never received). Run with
//
//	go test -run '^$' -bench SourceIngest -benchtime 200000x ./proxy
func BenchmarkSourceIngest(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind, func(b *testing.B) {
			f := benchFeeds(b, kind)
			if f.preload != nil {
				f.preload(b, b.N)
			}
			cpu0 := cpuTime()
			start := time.Now()
			srv, _ := serve(b, config.Config{}, nil, f.src)
			wstest.Eventually(b, wait, "source up", func() bool { return f.src.Stats().Connected })
			if f.external != nil {
				cpu0, start = cpuTime(), time.Now()
				cmd := f.external(b.N)
				if err := cmd.Run(); err != nil {
					b.Fatalf("publisher: %v", err)
				}
			}
			// Done when everything is forwarded or lost, or when nothing
			// moved for a second (what is left was lost in transit).
			var last uint64
			moved := time.Now()
			end := start
			for {
				st := srv.Stats()
				s := st.Dataflow.Sources[0]
				done := st.Dataflow.MessagesForwarded + s.Dropped
				if done != last {
					last, moved, end = done, time.Now(), time.Now()
				}
				if done >= uint64(b.N) || time.Since(moved) > time.Second {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			cpu := cpuTime() - cpu0
			wall := end.Sub(start)
			st := srv.Stats()
			fwd, s := st.Dataflow.MessagesForwarded, st.Dataflow.Sources[0]
			pct := func(n uint64) float64 { return 100 * float64(n) / float64(b.N) }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(fwd)/wall.Seconds(), "msgs/s")
			b.ReportMetric(float64(fwd)/cpu.Seconds(), "msgs/cpu-s")
			// Lost: counted by the source (dispatcher full, client library
			// buffer overflow), or never received (the server cut or
			// starved the subscriber).
			b.ReportMetric(pct(s.Dropped), "dropped-%")
			b.ReportMetric(pct(st.Dataflow.Dropped), "dispatch-full-%")
			b.ReportMetric(float64(s.SlowConsumer), "slow-events")
			b.ReportMetric(pct(uint64(b.N)-min(uint64(b.N), s.Received+s.Dropped)), "unreceived-%")
			if s.LastError != "" {
				b.Logf("%s: %s", kind, s.LastError)
			}
		})
	}
}

// BenchmarkSourceLatency measures publish-to-client latency through each
// source and the whole path (decode, dispatch, writer, loopback socket,
// WebSocket client) side by side in one run, at 1 message per millisecond;
// each message carries its send time. Run with
//
//	go test -run '^$' -bench SourceLatency -benchtime 3000x ./proxy
func BenchmarkSourceLatency(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind, func(b *testing.B) {
			f := benchFeeds(b, kind)
			_, host := serve(b, config.Config{}, nil, f.src)
			wstest.Eventually(b, wait, "source up", func() bool { return f.src.Stats().Connected })
			c := wstest.Dial(b, "ws://"+host+"/ws")
			c.NextOfType(b, "welcome", wait)
			measureDelivery(b, c, func(i int, sent int64) { f.publish(b, i, benchBody(i, sent)) })
			b.ReportMetric(0, "ns/op")
		})
	}
}
