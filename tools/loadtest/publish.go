package loadtest

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// publisher sends message k at the configured rate — on the trades feed a
// trade on Exchanges[k%E] for Symbols[(k/E)%S] to
// market-data-trade-<exchange>, on the demo feed the next message of the
// demo mix (feed.go) — and counts what it published per connection class.
type publisher struct {
	rdb  *redis.Client
	cfg  Config
	pad  string
	demo *demoFeed // nil: the trades feed

	mu     sync.Mutex
	n      uint64
	counts map[string]uint64
}

func newPublisher(rdb *redis.Client, cfg Config) *publisher {
	p := &publisher{rdb: rdb, cfg: cfg, pad: strings.Repeat("x", max(0, cfg.PayloadBytes-60)), counts: map[string]uint64{}}
	if cfg.Feed == FeedDemo {
		p.demo = newDemoFeed(cfg.Universe)
	}
	return p
}

// msgClass is what the connection classes see of a message.
type msgClass struct {
	exchange, symbol string
	trade            bool // symbol connections subscribe to trades only
}

func (p *publisher) message(k uint64, now time.Time) (channel string, body []byte, cls msgClass) {
	if p.demo != nil {
		return p.demo.next(now)
	}
	u := p.cfg.Universe
	ex := u.Exchanges[k%uint64(len(u.Exchanges))]
	sym := u.Symbols[(k/uint64(len(u.Exchanges)))%uint64(len(u.Symbols))]
	b := make([]byte, 0, 200+len(p.pad))
	b = append(b, `{"exchange":"`...)
	b = append(b, ex...)
	b = append(b, `","symbol":"`...)
	b = append(b, sym...)
	b = append(b, `","type":"trade","timestamp":`...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	b = append(b, `,"data":{"seq":`...)
	b = strconv.AppendUint(b, k, 10)
	b = append(b, `,"pad":"`...)
	b = append(b, p.pad...)
	b = append(b, `","sentAt":`...)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	b = append(b, `}}`...)
	return "market-data-trade-" + ex, b, msgClass{exchange: ex, symbol: sym, trade: true}
}

func (p *publisher) count(cls msgClass) {
	p.mu.Lock()
	p.n++
	p.counts["all"]++
	p.counts["ex:"+cls.exchange]++
	if cls.trade {
		p.counts["sym:"+cls.symbol]++
	}
	p.mu.Unlock()
}

func (p *publisher) published() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// expected is how many deliveries the connections of each class should see.
func (p *publisher) expected(groupConns map[string]int) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var e uint64
	for k, n := range groupConns {
		e += uint64(n) * p.counts[k]
	}
	return e
}

// run publishes for cfg.Duration from start. Messages due in the same
// millisecond tick go in one pipeline.
func (p *publisher) run(ctx context.Context, start time.Time) error {
	total := uint64(p.cfg.Rate * p.cfg.Duration.Seconds())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var k uint64
	for k < total {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		due := min(total, uint64(p.cfg.Rate*time.Since(start).Seconds())+1)
		if due <= k {
			continue
		}
		if due-k > 1000 {
			due = k + 1000
		}
		now := time.Now()
		pipe := p.rdb.Pipeline()
		classes := make([]msgClass, 0, due-k)
		for i := k; i < due; i++ {
			ch, body, cls := p.message(i, now)
			pipe.Publish(ctx, ch, body)
			classes = append(classes, cls)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for _, cls := range classes {
			p.count(cls)
		}
		k = due
	}
	return nil
}
