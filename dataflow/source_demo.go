package dataflow

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// DemoConfig configures the built-in synthetic feed.
type DemoConfig struct {
	// Enabled turns the feed on. Zero value: off.
	Enabled bool `yaml:"enabled"`
	// Exchange is the exchange name stamped on every message. Default "demo".
	Exchange string `yaml:"exchange"`
	// Symbols to generate. Default BTC/USDT, ETH/USDT, SOL/USDT.
	Symbols []string `yaml:"symbols"`
	// Interval between trade ticks per symbol. Default 200ms (5 trades/s per
	// symbol). Tickers and depth follow every 5th tick, klines every 10th.
	Interval time.Duration `yaml:"interval"`
}

// Demo generates realistic-looking trades, tickers, depth and 1-minute
// klines so that `go run .` shows live data with no pipeline attached.
type Demo struct {
	cfg DemoConfig
	c   counters
}

var _ Source = (*Demo)(nil)

// NewDemo returns a demo feed; cfg comes with its defaults applied
// (config.ApplyDefaults).
func NewDemo(cfg DemoConfig) (*Demo, error) {
	if cfg.Exchange == "" || len(cfg.Symbols) == 0 {
		return nil, fmt.Errorf("%w: sources.demo.exchange %q and symbols %q must be set", ErrConfig, cfg.Exchange, cfg.Symbols)
	}
	if err := checkPositive(setting{"sources.demo.interval", int64(cfg.Interval)}); err != nil {
		return nil, err
	}
	d := &Demo{cfg: cfg}
	d.c.name, d.c.typ = "demo", "demo"
	return d, nil
}

// Name implements Source.
func (d *Demo) Name() string { return d.c.name }

// Stats implements Source.
func (d *Demo) Stats() SourceStatus { return d.c.status() }

type demoSymbol struct {
	name       string
	price      float64
	open, high float64
	low, vol   float64
	tradeID    int64
}

// Run implements Source.
func (d *Demo) Run(ctx context.Context, sink Sink) error {
	g := NewDemoGenerator(d.cfg)
	d.c.setConnected(true)
	defer d.c.setConnected(false)
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			for _, md := range g.Tick(now) {
				d.c.deliver(sink, md)
			}
		}
	}
}

// DemoGenerator produces the demo feed's messages one tick at a time, for
// callers that pace the feed themselves (Demo.Run ticks it every
// DemoConfig.Interval; the load tool at its publish rate).
type DemoGenerator struct {
	exchange string
	syms     []*demoSymbol
	tick     int
}

// NewDemoGenerator returns a generator over cfg's exchange and symbols, as
// they are (Enabled and Interval are not used; no symbols, no messages).
func NewDemoGenerator(cfg DemoConfig) *DemoGenerator {
	base := map[string]float64{"BTC/USDT": 50000, "ETH/USDT": 3000, "SOL/USDT": 150}
	g := &DemoGenerator{exchange: cfg.Exchange, syms: make([]*demoSymbol, len(cfg.Symbols))}
	for i, s := range cfg.Symbols {
		p := base[s]
		if p == 0 {
			p = 100
		}
		g.syms[i] = &demoSymbol{name: s, price: p, open: p, high: p, low: p}
	}
	return g
}

// Tick returns the next tick's messages, stamped with now: per symbol a
// trade, on every 5th tick also a ticker and a depth snapshot, on every 10th
// also a 1-minute kline.
func (g *DemoGenerator) Tick(now time.Time) []*MarketData {
	g.tick++
	out := make([]*MarketData, 0, 4*len(g.syms))
	for _, s := range g.syms {
		out = g.emit(out, s, now)
	}
	return out
}

func price(p float64) string { return strconv.FormatFloat(p, 'f', 2, 64) }

func (g *DemoGenerator) emit(out []*MarketData, s *demoSymbol, now time.Time) []*MarketData {
	tick := g.tick
	ms := now.UnixMilli()
	s.price *= 1 + (rand.Float64()-0.5)*0.002
	s.high = math.Max(s.high, s.price)
	s.low = math.Min(s.low, s.price)
	qty := 0.001 + rand.Float64()
	s.vol += qty
	s.tradeID++
	side := "buy"
	if rand.IntN(2) == 0 {
		side = "sell"
	}
	b := make([]byte, 0, 160)
	b = append(b, `{"id":"`...)
	b = strconv.AppendInt(b, s.tradeID, 10)
	b = append(b, `","price":"`...)
	b = append(b, price(s.price)...)
	b = append(b, `","quantity":"`...)
	b = strconv.AppendFloat(b, qty, 'f', 4, 64)
	b = append(b, `","side":"`...)
	b = append(b, side...)
	b = append(b, `","timestamp":`...)
	b = strconv.AppendInt(b, ms, 10)
	b = append(b, '}')
	out = g.add(out, s.name, "trade", ms, b)

	if tick%5 == 0 {
		spread := s.price * 0.0001
		t := make([]byte, 0, 200)
		t = append(t, `{"lastPrice":"`...)
		t = append(t, price(s.price)...)
		t = append(t, `","bidPrice":"`...)
		t = append(t, price(s.price-spread)...)
		t = append(t, `","askPrice":"`...)
		t = append(t, price(s.price+spread)...)
		t = append(t, `","change24h":"`...)
		t = strconv.AppendFloat(t, (s.price-s.open)/s.open*100, 'f', 2, 64)
		t = append(t, `","volume24h":"`...)
		t = strconv.AppendFloat(t, s.vol, 'f', 4, 64)
		t = append(t, `","high24h":"`...)
		t = append(t, price(s.high)...)
		t = append(t, `","low24h":"`...)
		t = append(t, price(s.low)...)
		t = append(t, `"}`...)
		out = g.add(out, s.name, "ticker", ms, t)

		dp := make([]byte, 0, 300)
		dp = append(dp, `{"bids":[`...)
		for i := 1; i <= 5; i++ {
			if i > 1 {
				dp = append(dp, ',')
			}
			dp = append(dp, `["`...)
			dp = append(dp, price(s.price-spread*float64(i))...)
			dp = append(dp, `","`...)
			dp = strconv.AppendFloat(dp, rand.Float64()*2, 'f', 4, 64)
			dp = append(dp, `"]`...)
		}
		dp = append(dp, `],"asks":[`...)
		for i := 1; i <= 5; i++ {
			if i > 1 {
				dp = append(dp, ',')
			}
			dp = append(dp, `["`...)
			dp = append(dp, price(s.price+spread*float64(i))...)
			dp = append(dp, `","`...)
			dp = strconv.AppendFloat(dp, rand.Float64()*2, 'f', 4, 64)
			dp = append(dp, `"]`...)
		}
		dp = append(dp, `],"updateTime":`...)
		dp = strconv.AppendInt(dp, ms, 10)
		dp = append(dp, '}')
		out = g.add(out, s.name, "depth", ms, dp)
	}
	if tick%10 == 0 {
		openTime := now.Truncate(time.Minute).UnixMilli()
		k := make([]byte, 0, 200)
		k = append(k, `{"open":"`...)
		k = append(k, price(s.open)...)
		k = append(k, `","high":"`...)
		k = append(k, price(s.high)...)
		k = append(k, `","low":"`...)
		k = append(k, price(s.low)...)
		k = append(k, `","close":"`...)
		k = append(k, price(s.price)...)
		k = append(k, `","volume":"`...)
		k = strconv.AppendFloat(k, s.vol, 'f', 4, 64)
		k = append(k, `","openTime":`...)
		k = strconv.AppendInt(k, openTime, 10)
		k = append(k, `,"closeTime":`...)
		k = strconv.AppendInt(k, openTime+59999, 10)
		k = append(k, `,"interval":"1m"}`...)
		out = g.add(out, s.name, "kline_1m", ms, k)
	}
	return out
}

func (g *DemoGenerator) add(out []*MarketData, symbol, typ string, ts int64, data []byte) []*MarketData {
	return append(out, &MarketData{Exchange: g.exchange, Symbol: symbol, Type: typ, Timestamp: ts, Data: data})
}
