package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"wsproxy/tools/loadtest"
)

// round is one measured run: a target with its node count and connections.
type round struct {
	target, name string
	nodes, conns int
}

// planRounds returns the rounds in the order run (the targets, or with
// -scale the node counts, alternating over -repeat) and the report names of
// one round.
func planRounds(o options, targets []string) ([]round, []string, error) {
	var one []round
	if o.scale == "" {
		for _, t := range targets {
			t = strings.TrimSpace(t)
			one = append(one, round{target: t, name: t, nodes: o.nodes, conns: o.conns})
		}
	} else {
		if len(targets) != 1 || strings.TrimSpace(targets[0]) == "external" {
			return nil, nil, errors.New("-scale measures one started target (e.g. -targets wsproxy)")
		}
		t := strings.TrimSpace(targets[0])
		for _, f := range strings.Split(o.scale, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return nil, nil, fmt.Errorf("-scale %q: want node counts like 1,2,4", o.scale)
			}
			one = append(one, round{target: t, name: fmt.Sprintf("%s-x%d", t, n), nodes: n, conns: o.conns * n})
		}
	}
	var rounds []round
	for r := 0; r < max(1, o.repeat); r++ {
		rounds = append(rounds, one...)
	}
	names := make([]string, len(one))
	for i, rd := range one {
		names[i] = rd.name
	}
	return rounds, names, nil
}

func removeGroups(gs []*loadtest.CPUGroup) {
	for _, g := range gs {
		_ = g.Remove()
	}
}

// worstNodeP99 is the highest per-node p99 of a report (its p99 when it
// has one node).
func worstNodeP99(r loadtest.Report) float64 {
	if len(r.NodeP99) == 0 {
		return r.Latency.P99
	}
	w := 0.0
	for _, v := range r.NodeP99 {
		w = max(w, v)
	}
	return w
}

// printScale prints, per node count, the medians over the rounds of the
// worst node's p99 and of the loss, and their ratios to the first node
// count's medians (the single node).
func printScale(w io.Writer, o options, names []string, reps []loadtest.Report) {
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	quota := "uncapped"
	if o.cpuQuota > 0 {
		quota = fmt.Sprintf("%.2f core per node (CFS period %v)", o.cpuQuota, o.cpuPeriod)
	}
	fmt.Fprintf(w, "scale-out, %d conns per node, %s:\n", o.conns, quota)
	var baseP99, baseLoss float64
	for i, n := range names {
		var p99, loss []float64
		var perNode []string
		for _, r := range reps {
			if r.Name == n {
				p99 = append(p99, worstNodeP99(r))
				loss = append(loss, r.LossPct)
				perNode = append(perNode, fmt.Sprint(r.NodeP99))
			}
		}
		mp, ml := med(p99), med(loss)
		if i == 0 {
			baseP99, baseLoss = mp, ml
		}
		ratio := "-"
		if baseP99 > 0 {
			ratio = fmt.Sprintf("%.2fx", mp/baseP99)
		}
		fmt.Fprintf(w, "  %-14s worst-node p99 %.1f ms (%s of %s), loss %.3f%% (single node %.3f%%), per-node p99 by round %s\n",
			n, mp, ratio, names[0], ml, baseLoss, strings.Join(perNode, " "))
	}
}
