package deploy

import (
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var promql = parser.NewParser(parser.Options{})

// metricNames returns the metric names an expression selects.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := promql.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%s: PromQL does not parse: %v\n%s", where, err, expr)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name == "" {
				t.Errorf("%s: a selector without a metric name: %s", where, vs)
			}
			names = append(names, name)
		}
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%s: selects no metric: %s", where, expr)
	}
	return names
}

// exported scrapes /metrics of a real wsproxy running the shipped config
// (demo feed on, so per-source and per-reason series exist) and returns the
// names of every sample.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	p := startProc(t, binary)
	names := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, err := get("http://" + p.addr + "/metrics")
		if err != nil || code != 200 {
			t.Fatalf("/metrics: %d %v", code, err)
		}
		clear(names)
		for _, line := range strings.Split(body, "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			names[line[:strings.IndexAny(line, "{ ")]] = true
		}
		if names["wsproxy_source_up"] && names["wsproxy_shed_messages_total"] && names["wsproxy_memory_usage_bytes"] {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks the source, shed or memory series:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// grafanaVars are the dashboard's variables as Grafana expands them before a
// query reaches Prometheus.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h")

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana/wsproxy.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana/wsproxy.json: %v", err)
	}
	return d
}

// Every metric name used by an alert or a dashboard query is one the real
// binary exports, and every alert expression parses (rulefmt validates the
// whole file: expressions, durations, label and annotation templates).
func TestAlertsAndDashboardUseExportedMetrics(t *testing.T) {
	have := exported(t)
	used := map[string][]string{} // metric name -> where

	groups, errs := rulefmt.ParseFile("prometheus/alerts.yml", false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("prometheus/alerts.yml: %v", errs)
	}
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts++
			for _, n := range metricNames(t, "alert "+r.Alert, r.Expr) {
				used[n] = append(used[n], "alert "+r.Alert)
			}
			if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
				t.Errorf("alert %s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no summary", r.Alert)
			}
		}
	}
	if alerts < 10 {
		t.Fatalf("only %d alerts", alerts)
	}

	d := loadDashboard(t)
	queries := 0
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			for _, n := range metricNames(t, "panel "+p.Title, grafanaVars.Replace(tg.Expr)) {
				used[n] = append(used[n], "panel "+p.Title)
			}
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		q, _ := v.Query.(string)
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
		}
		for _, n := range metricNames(t, "variable "+v.Name, grafanaVars.Replace(m[1])) {
			used[n] = append(used[n], "variable "+v.Name)
		}
	}
	if queries < 10 {
		t.Fatalf("only %d dashboard queries", queries)
	}

	var missing []string
	for n, where := range used {
		if !have[n] {
			missing = append(missing, n+" (used by "+strings.Join(slices.Compact(where), ", ")+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("not exported by wsproxy's /metrics:\n  %s", strings.Join(missing, "\n  "))
	}
}

// The alerts carry the legacy thresholds and cover the failure modes the
// issue names; each is checked on the parsed expression, not on text.
func TestAlertThresholds(t *testing.T) {
	groups, errs := rulefmt.ParseFile("prometheus/alerts.yml", false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	byName := map[string]rulefmt.Rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			byName[r.Alert] = r
		}
	}
	for _, tc := range []struct {
		alert, severity string
		op              string
		threshold       float64
		uses            []string
	}{
		{"WsproxyLatencyHigh", "warning", ">", 0.015, []string{"wsproxy_delivery_latency_seconds_sum", "wsproxy_delivery_latency_seconds_count"}},
		{"WsproxyLatencyCritical", "critical", ">", 0.030, []string{"wsproxy_delivery_latency_seconds_sum", "wsproxy_delivery_latency_seconds_count"}},
		{"WsproxyErrorRateHigh", "warning", ">", 0.01, []string{"wsproxy_messages_forwarded_total", "wsproxy_client_errors_total", "wsproxy_connection_errors_total", "wsproxy_dispatch_dropped_total", "wsproxy_source_rejected_total"}},
		{"WsproxyErrorRateCritical", "critical", ">", 0.05, []string{"wsproxy_messages_forwarded_total", "wsproxy_client_errors_total"}},
		{"WsproxyMemoryHigh", "warning", ">", 0.8, []string{"wsproxy_memory_usage_bytes", "wsproxy_memory_threshold_bytes"}},
		{"WsproxyConnectionsNearCapacity", "warning", ">", 0.9, []string{"wsproxy_connections_active", "wsproxy_connections_max"}},
		{"WsproxySourceDown", "critical", "==", 0, []string{"wsproxy_source_up"}},
		{"WsproxySustainedShedding", "warning", ">", 0, []string{"wsproxy_shed_messages_total"}},
		{"WsproxySlowConsumerCloses", "warning", ">", 5, []string{"wsproxy_slow_consumer_closes_total"}},
		{"WsproxyDispatcherDrops", "critical", ">", 0, []string{"wsproxy_dispatch_dropped_total"}},
	} {
		r, ok := byName[tc.alert]
		if !ok {
			t.Errorf("no alert %s", tc.alert)
			continue
		}
		if r.Labels["severity"] != tc.severity {
			t.Errorf("%s: severity %q, want %s", tc.alert, r.Labels["severity"], tc.severity)
		}
		e, err := promql.ParseExpr(r.Expr)
		if err != nil {
			t.Fatal(err)
		}
		be, ok := e.(*parser.BinaryExpr)
		if !ok {
			t.Errorf("%s: top level is %T, want a comparison", tc.alert, e)
			continue
		}
		num, ok := be.RHS.(*parser.NumberLiteral)
		if !ok || be.Op.String() != tc.op || num.Val != tc.threshold {
			t.Errorf("%s: %s %s, want %s %g", tc.alert, be.Op, be.RHS, tc.op, tc.threshold)
		}
		names := metricNames(t, tc.alert, r.Expr)
		for _, u := range tc.uses {
			if !slices.Contains(names, u) {
				t.Errorf("%s does not use %s (uses %v)", tc.alert, u, names)
			}
		}
	}
}

// The dashboard shows the series of the /admin/ page.
func TestDashboardHasThePageSeries(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatal("dashboard without uid or title")
	}
	used := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, n := range metricNames(t, p.Title, grafanaVars.Replace(tg.Expr)) {
				used[n] = true
			}
		}
	}
	// The page's charts: connections, delivered msgs/s and bytes/s, latency
	// p50/p99, shed by reason, memory heap and level, dispatcher queue,
	// per-source state.
	for _, n := range []string{
		"wsproxy_connections_active", "wsproxy_messages_sent_total", "wsproxy_bytes_sent_total",
		"wsproxy_delivery_latency_seconds_bucket", "wsproxy_shed_messages_total", "wsproxy_memory_heap_bytes",
		"wsproxy_memory_level", "wsproxy_dispatch_queue_length", "wsproxy_dispatch_dropped_total", "wsproxy_source_up",
	} {
		if !used[n] {
			t.Errorf("dashboard lacks %s", n)
		}
	}
}
