package loadtest

import (
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// FloorTarget names the floor server's reports (tools/floorhub): one
// socket write per delivery and nothing else, the figure every other target
// is divided by.
const FloorTarget = "floor"

// LoadAvg is the box's load average over 1, 5 and 15 minutes
// (/proc/loadavg), as uptime prints it.
type LoadAvg [3]float64

// ReadLoadAvg returns the current load average; zeros when unreadable.
func ReadLoadAvg() LoadAvg {
	var l LoadAvg
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	for i, f := range strings.Fields(string(b)) {
		if i >= len(l) {
			break
		}
		l[i], _ = strconv.ParseFloat(f, 64)
	}
	return l
}

// Figure is one reported figure of a Report.
type Figure struct {
	Name   string
	Format string
	Get    func(r Report) float64
}

// Ratio returns fig(r) / fig(base), or NaN when base's figure is 0 (a loss
// of 0 on the floor, say): no ratio is made up.
func (f Figure) Ratio(r, base Report) float64 {
	b := f.Get(base)
	if b == 0 {
		return math.NaN()
	}
	return f.Get(r) / b
}

// RatiosTo returns, for every figure, fig(r) / fig(base) keyed by the
// figure's name, leaving out figures whose base is 0.
func RatiosTo(figs []Figure, r, base Report) map[string]float64 {
	out := make(map[string]float64, len(figs))
	for _, f := range figs {
		if v := f.Ratio(r, base); !math.IsNaN(v) {
			out[f.Name] = v
		}
	}
	return out
}

// FloorRatios sets VsFloor on every report of rounds (reports in the order
// run, each round holding the targets once) to its ratios to the floor's
// report of the same round. A round without a floor report is left alone.
func FloorRatios(figs []Figure, reps []Report, perRound int) {
	for start := 0; start+perRound <= len(reps); start += perRound {
		round := reps[start : start+perRound]
		fi := -1
		for i, r := range round {
			if r.Name == FloorTarget {
				fi = i
			}
		}
		if fi < 0 {
			continue
		}
		for i := range round {
			if i != fi {
				round[i].VsFloor = RatiosTo(figs, round[i], round[fi])
			}
		}
	}
}

// MedianRatio returns the median over reps of their VsFloor[name], and how
// many reports had one.
func MedianRatio(reps []Report, name string) (float64, int) {
	var v []float64
	for _, r := range reps {
		if x, ok := r.VsFloor[name]; ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN(), 0
	}
	sort.Float64s(v)
	return v[len(v)/2], len(v)
}
