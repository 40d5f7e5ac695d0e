package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// Control frames (welcome, pong, subscribed, unsubscribed, error) are
// compared field by field, not only counted: the first frame of each type
// on one side against the first of the same type on the other. A field the
// legacy frame has must be in wsproxy's with the same JSON type, and with
// the same value unless it is volatile (times, ids). wsproxy may add only
// the fields PROTOCOL.md adds (welcome proxyVersion, error code). Errors
// must come in equal numbers (the probes of Run produce the same on both
// sides when wsproxy is silent where the legacy server was).

// controlCompared are the control types compared field by field.
var controlCompared = []string{"welcome", "pong", "subscribed", "unsubscribed", "error"}

// controlVolatile are the paths compared by JSON type only.
var controlVolatile = map[string]bool{
	"timestamp": true, "payload.serverTime": true, "payload.connectionId": true, "payload.filterId": true,
}

// controlAdded are the paths wsproxy adds to a legacy control frame.
var controlAdded = map[string]map[string]bool{
	"welcome": {"payload.proxyVersion": true},
	"error":   {"payload.code": true},
}

// controlSeen is what one side received of one control type.
type controlSeen struct {
	count int
	first any
	raw   []byte
}

// ControlCheck is the comparison of one control type.
type ControlCheck struct {
	Type   string   `json:"type"`
	Legacy int      `json:"legacy"`
	Proxy  int      `json:"proxy"`
	Fields []string `json:"fields,omitempty"`
	// LegacyFrame and ProxyFrame are the first frames compared.
	LegacyFrame json.RawMessage `json:"legacyFrame,omitempty"`
	ProxyFrame  json.RawMessage `json:"proxyFrame,omitempty"`
}

// observeControlLocked records a control frame of side.
func (m *Matcher) observeControlLocked(side Side, typ string, frame []byte) {
	if m.control[side] == nil {
		m.control[side] = make(map[string]*controlSeen)
	}
	cs := m.control[side][typ]
	if cs == nil {
		cs = &controlSeen{}
		m.control[side][typ] = cs
	}
	cs.count++
	if cs.count == 1 {
		cs.raw = append([]byte(nil), frame...)
		_ = decodeNumber(cs.raw, &cs.first)
	}
}

// controlReportLocked compares the control frames of both sides. A
// subscribed or unsubscribed reply that only wsproxy sent is expected for
// a filter subscription (the legacy server did not answer filters).
func (m *Matcher) controlReportLocked() (checks []ControlCheck, diffs int) {
	for _, typ := range controlCompared {
		l, p := m.control[Legacy][typ], m.control[Proxy][typ]
		if l == nil && p == nil {
			continue
		}
		c := ControlCheck{Type: typ}
		if l != nil {
			c.Legacy, c.LegacyFrame = l.count, l.raw
		}
		if p != nil {
			c.Proxy, c.ProxyFrame = p.count, p.raw
		}
		switch {
		case l == nil && (typ == "subscribed" || typ == "unsubscribed") && m.sub.Mode == ModeFilter:
		case l == nil:
			c.Fields = append(c.Fields, "only wsproxy sent "+typ)
		case p == nil:
			c.Fields = append(c.Fields, "only the legacy server sent "+typ)
		default:
			controlDiff(typ, "", l.first, p.first, &c.Fields)
			if typ == "error" && l.count != p.count {
				c.Fields = append(c.Fields, fmt.Sprintf("legacy sent %d error frames, wsproxy %d", l.count, p.count))
			}
		}
		if len(c.Fields) > 0 {
			diffs++
		}
		checks = append(checks, c)
	}
	return checks, diffs
}

func controlDiff(typ, path string, l, p any, out *[]string) {
	if len(*out) >= maxFieldDiffs {
		return
	}
	lm, lok := l.(map[string]any)
	pm, pok := p.(map[string]any)
	if lok && pok {
		keys := make([]string, 0, len(lm)+len(pm))
		for k := range lm {
			keys = append(keys, k)
		}
		for k := range pm {
			if _, ok := lm[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			lv, lin := lm[k]
			pv, pin := pm[k]
			switch {
			case !pin:
				*out = append(*out, sub+": only in legacy "+short(lv))
			case !lin:
				if !controlAdded[typ][sub] {
					*out = append(*out, sub+": only in proxy "+short(pv))
				}
			case controlVolatile[sub]:
				if kind(lv) != kind(pv) {
					*out = append(*out, sub+": legacy "+short(lv)+" proxy "+short(pv)+" (different JSON types)")
				}
			default:
				controlDiff(typ, sub, lv, pv, out)
			}
		}
		return
	}
	lb, _ := json.Marshal(l)
	pb, _ := json.Marshal(p)
	if !bytes.Equal(lb, pb) {
		if path == "" {
			path = "frame"
		}
		*out = append(*out, path+": legacy "+short(l)+" proxy "+short(p))
	}
}

func kind(v any) string {
	switch v.(type) {
	case json.Number:
		return "number"
	case string:
		return "string"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "null"
}
