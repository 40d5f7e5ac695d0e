package compare

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"wsproxy/compat"
	"wsproxy/config"
	"wsproxy/subscription"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("compare: invalid configuration")

// Mode is the kind of subscription both clients make.
type Mode int

// Subscription modes. The zero value sends nothing, as the deployed frontend
// does.
const (
	ModeNone    Mode = iota // send nothing: the connection receives everything
	ModeChannel             // {"type":"subscribe","payload":{"channel":"marketData"}}
	ModeFilter              // {"type":"subscribe","payload":FILTER}
)

// Subscription is what both clients subscribe to. Build it with
// ParseSubscription; the zero value is ModeNone.
type Subscription struct {
	Mode Mode
	// Spec is the filter as given (ModeFilter only).
	Spec compat.FilterSpec
	// filter is Spec normalised with wsproxy's rules, used to filter the
	// legacy stream and to check the proxy stream.
	filter subscription.Filter
	raw    string
}

// ParseSubscription parses the --subscribe flag: "none" (or ""), "channel",
// or a filter object such as {"exchange":["binance"],"dataTypes":["trade"]}.
// A filter is checked with the same rules wsproxy applies.
func ParseSubscription(s string) (Subscription, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "none":
		return Subscription{Mode: ModeNone, raw: "none"}, nil
	case "channel", compat.ChannelMarketData:
		return Subscription{Mode: ModeChannel, raw: "channel"}, nil
	}
	if !strings.HasPrefix(s, "{") {
		return Subscription{}, fmt.Errorf("%w: --subscribe %q: want none, channel or a filter object", ErrConfig, s)
	}
	m, perr := compat.DecodeClient([]byte(`{"type":"subscribe","payload":` + s + `}`))
	if perr != nil {
		return Subscription{}, fmt.Errorf("%w: --subscribe filter: %s", ErrConfig, perr.Message)
	}
	if m.Channel != "" {
		return Subscription{}, fmt.Errorf("%w: --subscribe filter: use \"channel\" for the channel form", ErrConfig)
	}
	f, err := subscription.NewFilter(m.Filter.Exchange, m.Filter.Symbols, m.Filter.DataTypes, config.Default().SubscriptionLimits())
	if err != nil {
		return Subscription{}, fmt.Errorf("%w: --subscribe filter: %w", ErrConfig, err)
	}
	return Subscription{Mode: ModeFilter, Spec: m.Filter, filter: f, raw: s}, nil
}

// String returns the subscription as given on the command line.
func (s Subscription) String() string {
	if s.raw == "" {
		return "none"
	}
	return s.raw
}

// Message returns the subscribe frame to send, nil for ModeNone.
func (s Subscription) Message() []byte {
	switch s.Mode {
	case ModeChannel:
		return []byte(`{"type":"subscribe","payload":{"channel":"marketData"}}`)
	case ModeFilter:
		return []byte(`{"type":"subscribe","payload":` + s.raw + `}`)
	}
	return nil
}

// Matches reports whether a data message is inside the subscription.
func (s Subscription) Matches(exchange, dataType, symbol string) bool {
	if s.Mode != ModeFilter {
		return true
	}
	return s.filter.Matches(strings.ToLower(exchange), strings.ToLower(dataType), subscription.NormalizeSymbol(symbol))
}

// Config configures Run. Zero fields take the defaults documented on each
// field.
type Config struct {
	// LegacyURL is the legacy server's WebSocket URL (ws://host:port/ws).
	// Required.
	LegacyURL string
	// ProxyURL is wsproxy's WebSocket URL. Required.
	ProxyURL string
	// ProxyCompression offers permessage-deflate to the proxy side (as
	// browsers do) and fails the run if it is not agreed.
	ProxyCompression bool
	// Subscribe is sent by both clients once connected. Zero: none.
	Subscribe Subscription
	// Duration is the length of the measurement window. 0: 60s, unless
	// Count is set, in which case the window lasts until Count is reached
	// (bounded by MaxDuration).
	Duration time.Duration
	// Count closes the window once either side has received this many data
	// messages inside it. 0: no count limit.
	Count int
	// MaxDuration bounds a count-limited run without Duration. 0: 10m.
	MaxDuration time.Duration
	// MinParity is the parity (percent) below which the report fails.
	// 0: 100. Use a negative value to never fail on parity.
	MinParity float64
	// WarmUp delays the opening of the window after both clients are
	// ready, so that messages already in flight are not counted. 0: 1s.
	// Negative: no delay.
	WarmUp time.Duration
	// Grace is how long to keep reading after the window closes for late
	// arrivals. 0: 3s.
	Grace time.Duration
	// ReadyTimeout bounds connecting and subscribing. 0: 10s.
	ReadyTimeout time.Duration
	// PingInterval between application pings ({"type":"ping"} with an ISO
	// timestamp, as the frontend sends). 0: 30s.
	PingInterval time.Duration
	// MaxDiffs is how many differing and missing examples the report keeps.
	// 0: 5.
	MaxDiffs int
	// Progress receives a one-line progress update every ProgressInterval.
	// nil: no progress.
	Progress io.Writer
	// ProgressInterval between progress lines. 0: 1s.
	ProgressInterval time.Duration
	// ProgressCR ends progress lines with '\r' (for a terminal) instead of
	// '\n'.
	ProgressCR bool
}

func (c *Config) applyDefaults() {
	if c.Duration == 0 && c.Count == 0 {
		c.Duration = 60 * time.Second
	}
	if c.MaxDuration == 0 {
		c.MaxDuration = 10 * time.Minute
	}
	if c.MinParity == 0 {
		c.MinParity = 100
	}
	if c.WarmUp == 0 {
		c.WarmUp = time.Second
	} else if c.WarmUp < 0 {
		c.WarmUp = 0
	}
	if c.Grace == 0 {
		c.Grace = 3 * time.Second
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 10 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.MaxDiffs == 0 {
		c.MaxDiffs = 5
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = time.Second
	}
}

// Validate checks the configuration after defaults.
func (c *Config) Validate() error {
	var errs []error
	for _, u := range [...]struct{ name, url string }{{"legacy", c.LegacyURL}, {"proxy", c.ProxyURL}} {
		if !strings.HasPrefix(u.url, "ws://") && !strings.HasPrefix(u.url, "wss://") {
			errs = append(errs, fmt.Errorf("--%s %q: want a ws:// or wss:// URL", u.name, u.url))
		}
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("--duration %s: must not be negative", c.Duration))
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("--count %d: must not be negative", c.Count))
	}
	if c.MinParity > 100 {
		errs = append(errs, fmt.Errorf("--min-parity %g: at most 100", c.MinParity))
	}
	if c.Grace < 0 || c.ReadyTimeout < 0 || c.PingInterval < 0 || c.ProgressInterval < 0 || c.MaxDuration < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.MaxDiffs < 0 {
		errs = append(errs, fmt.Errorf("max diffs %d: must not be negative", c.MaxDiffs))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}
