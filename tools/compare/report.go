package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// SideStats counts what one client received.
type SideStats struct {
	// Data is the number of data messages first seen inside the window.
	Data int `json:"data"`
	// Control counts welcome, pong, subscribed and other replies.
	Control int `json:"control"`
	// Malformed counts in-window frames that are not in the legacy shape.
	Malformed int `json:"malformed"`
	// OutsideFilter counts in-window data messages outside the subscription
	// filter (expected from the legacy server, which broadcast everything;
	// a violation from wsproxy).
	OutsideFilter int `json:"outsideFilter"`
	// WarmUp counts messages excluded because they were first seen before
	// the window opened.
	WarmUp int `json:"warmUp"`
	// AfterWindow counts messages first seen after the window closed.
	AfterWindow int `json:"afterWindow"`
}

// TypeStats are the per data type counts.
type TypeStats struct {
	Legacy          int `json:"legacy"`
	Proxy           int `json:"proxy"`
	Matched         int `json:"matched"`
	MissingInProxy  int `json:"missingInProxy"`
	MissingInLegacy int `json:"missingInLegacy"`
	Differing       int `json:"differing"`
	OutOfFilter     int `json:"outOfFilter,omitempty"`
}

func (t *TypeStats) count(s Side) {
	if s == Legacy {
		t.Legacy++
	} else {
		t.Proxy++
	}
}

// SkewStats describe proxy arrival minus legacy arrival of matched messages,
// in milliseconds: positive means wsproxy delivered later.
type SkewStats struct {
	Samples int     `json:"samples"`
	Min     float64 `json:"min"`
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
}

// Diff is one message received by both sides with different payloads.
type Diff struct {
	Key    Key             `json:"key"`
	Fields []string        `json:"fields"`
	Legacy json.RawMessage `json:"legacy"`
	Proxy  json.RawMessage `json:"proxy"`
}

// Sample is one message received by one side only.
type Sample struct {
	Key     Key             `json:"key"`
	Payload json.RawMessage `json:"payload"`
}

// Report is the result of a comparison. Parity is the share of in-window
// messages received identically by both sides:
//
//	matched / (matched + missingInProxy + missingInLegacy + differing + outOfFilter + malformed)
//
// in percent; it is 0 when nothing was compared, which fails the run.
type Report struct {
	LegacyURL    string    `json:"legacyUrl,omitempty"`
	ProxyURL     string    `json:"proxyUrl,omitempty"`
	Subscription string    `json:"subscription"`
	WindowStart  time.Time `json:"windowStart"`
	WindowEnd    time.Time `json:"windowEnd"`
	// Seconds is the length of the window.
	Seconds   float64 `json:"seconds"`
	Parity    float64 `json:"parity"`
	MinParity float64 `json:"minParity"`
	Pass      bool    `json:"pass"`

	Matched         int `json:"matched"`
	MissingInProxy  int `json:"missingInProxy"`
	MissingInLegacy int `json:"missingInLegacy"`
	Differing       int `json:"differing"`
	// OutOfFilter counts messages wsproxy delivered outside the filter.
	OutOfFilter int `json:"outOfFilter"`

	Legacy SideStats            `json:"legacy"`
	Proxy  SideStats            `json:"proxy"`
	Types  map[string]TypeStats `json:"types"`
	Skew   SkewStats            `json:"skewMs"`

	Diffs                  []Diff   `json:"diffs,omitempty"`
	MissingInProxySamples  []Sample `json:"missingInProxySamples,omitempty"`
	MissingInLegacySamples []Sample `json:"missingInLegacySamples,omitempty"`
	Malformed              []string `json:"malformed,omitempty"`
	// Control compares the control frames (welcome, pong, subscribed,
	// unsubscribed, error) field by field; ControlDiffs counts the types
	// that differ. Any control difference fails the run.
	Control      []ControlCheck `json:"control"`
	ControlDiffs int            `json:"controlDiffs"`
	// Problems lists what went wrong besides parity (a lost connection).
	Problems []string `json:"problems,omitempty"`
}

// finish computes the derived fields.
func (r *Report) finish() {
	if !r.WindowStart.IsZero() && !r.WindowEnd.IsZero() {
		r.Seconds = r.WindowEnd.Sub(r.WindowStart).Seconds()
	}
	total := r.Matched + r.MissingInProxy + r.MissingInLegacy + r.Differing + r.OutOfFilter +
		r.Legacy.Malformed + r.Proxy.Malformed
	if total > 0 {
		r.Parity = 100 * float64(r.Matched) / float64(total)
	}
	r.Pass = total > 0 && r.Parity >= r.MinParity && len(r.Problems) == 0 && r.ControlDiffs == 0
}

// AddProblem records a failure that is not a parity figure; the report no
// longer passes.
func (r *Report) AddProblem(p string) {
	r.Problems = append(r.Problems, p)
	r.Pass = false
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "%s  parity %.3f%% (minimum %g%%) over %.1fs, subscription %s\n", verdict, r.Parity, r.MinParity, r.Seconds, r.Subscription)
	fmt.Fprintf(&b, "  matched %d, missing in proxy %d, missing in legacy %d, differing %d, out of filter %d\n",
		r.Matched, r.MissingInProxy, r.MissingInLegacy, r.Differing, r.OutOfFilter)
	fmt.Fprintf(&b, "  legacy: %d data, %d control, %d malformed, %d warm-up, %d after window, %d outside filter\n",
		r.Legacy.Data, r.Legacy.Control, r.Legacy.Malformed, r.Legacy.WarmUp, r.Legacy.AfterWindow, r.Legacy.OutsideFilter)
	fmt.Fprintf(&b, "  proxy:  %d data, %d control, %d malformed, %d warm-up, %d after window, %d outside filter\n",
		r.Proxy.Data, r.Proxy.Control, r.Proxy.Malformed, r.Proxy.WarmUp, r.Proxy.AfterWindow, r.Proxy.OutsideFilter)
	if r.Skew.Samples > 0 {
		fmt.Fprintf(&b, "  arrival skew proxy-legacy (ms): p50 %.2f, p99 %.2f, min %.2f, max %.2f, mean %.2f (%d samples)\n",
			r.Skew.P50, r.Skew.P99, r.Skew.Min, r.Skew.Max, r.Skew.Mean, r.Skew.Samples)
	}
	types := make([]string, 0, len(r.Types))
	for t := range r.Types {
		types = append(types, t)
	}
	sort.Strings(types)
	fmt.Fprintf(&b, "  %-10s %8s %8s %8s %8s %8s %8s\n", "type", "legacy", "proxy", "matched", "miss-P", "miss-L", "differ")
	for _, t := range types {
		s := r.Types[t]
		fmt.Fprintf(&b, "  %-10s %8d %8d %8d %8d %8d %8d\n", t, s.Legacy, s.Proxy, s.Matched, s.MissingInProxy, s.MissingInLegacy, s.Differing)
	}
	for _, c := range r.Control {
		verdict := "same"
		if len(c.Fields) > 0 {
			verdict = "DIFFERS: " + strings.Join(c.Fields, "; ")
		}
		fmt.Fprintf(&b, "  control %-12s legacy %d proxy %d  %s\n", c.Type, c.Legacy, c.Proxy, verdict)
	}
	for _, d := range r.Diffs {
		ts := fmt.Sprint(d.Key.Timestamp)
		if d.Key.TimestampText != "" {
			ts = d.Key.TimestampText
		}
		fmt.Fprintf(&b, "  differs %s/%s/%s@%s: %s\n", d.Key.Exchange, d.Key.Type, d.Key.Symbol, ts, strings.Join(d.Fields, "; "))
	}
	for _, s := range r.MissingInProxySamples {
		fmt.Fprintf(&b, "  missing in proxy: %s\n", s.Payload)
	}
	for _, s := range r.MissingInLegacySamples {
		fmt.Fprintf(&b, "  missing in legacy: %s\n", s.Payload)
	}
	for _, m := range r.Malformed {
		fmt.Fprintf(&b, "  malformed %s\n", m)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func skewStats(samples []float64, seen int) SkewStats {
	if len(samples) == 0 {
		return SkewStats{}
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	pct := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return SkewStats{Samples: seen, Min: s[0], P50: pct(0.50), P99: pct(0.99), Max: s[len(s)-1], Mean: sum / float64(len(s))}
}

// maxFieldDiffs bounds the fields listed per diff.
const maxFieldDiffs = 10

func newDiff(k Key, legacy, proxy []byte) Diff {
	var l, p any
	_ = decodeNumber(legacy, &l)
	_ = decodeNumber(proxy, &p)
	var fields []string
	diffValues("", l, p, &fields)
	return Diff{Key: k, Fields: fields, Legacy: legacy, Proxy: proxy}
}

func decodeNumber(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// diffValues lists the paths where a and b differ, as
// "data.price: legacy "1" proxy "2"".
func diffValues(path string, a, b any, out *[]string) {
	if len(*out) >= maxFieldDiffs {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			av, ain := am[k]
			bv, bin := bm[k]
			switch {
			case !ain:
				*out = append(*out, p+": only in proxy "+short(bv))
			case !bin:
				*out = append(*out, p+": only in legacy "+short(av))
			default:
				diffValues(p, av, bv, out)
			}
		}
		return
	}
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok && len(as) == len(bs) {
		for i := range as {
			diffValues(fmt.Sprintf("%s[%d]", path, i), as[i], bs[i], out)
		}
		return
	}
	if sa, sb := short(a), short(b); sa != sb {
		if path == "" {
			path = "payload"
		}
		*out = append(*out, path+": legacy "+sa+" proxy "+sb)
	}
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
