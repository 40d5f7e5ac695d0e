package compat

import (
	"encoding/json"
	"fmt"
	"strconv"

	"wsproxy/dataflow"
)

// The encoders below write compact JSON with the key order of PROTOCOL.md and
// no trailing newline. Each appends to dst and returns the extended slice, so
// callers encode into pooled buffers; apart from AppendStats none allocates
// unless dst has to grow.

// ProxyVersion is the protocol version announced in the welcome's
// "proxyVersion", the value the refactored legacy proxy (B) sent: wsproxy
// speaks that protocol.
const ProxyVersion = "1.0.0"

// AppendWelcome appends the first frame a connection receives, which tells
// the client its connection id and lets it estimate clock skew (A's shape
// plus B's proxyVersion):
// {"type":"welcome","payload":{"connectionId":ID,"serverTime":T,"proxyVersion":"1.0.0"},"timestamp":T}.
func AppendWelcome(dst []byte, connID string, serverTime, ts int64) []byte {
	dst = append(dst, `{"type":"welcome","payload":{"connectionId":`...)
	dst = AppendJSONString(dst, connID)
	dst = append(dst, `,"serverTime":`...)
	dst = strconv.AppendInt(dst, serverTime, 10)
	dst = append(dst, `,"proxyVersion":"`+ProxyVersion+`"}`...)
	return appendTimestamp(dst, ts)
}

// AppendLegacyWelcome appends the deployed legacy server's (A's) welcome,
// without B's proxyVersion, for the reference server:
// {"type":"welcome","payload":{"connectionId":ID,"serverTime":T},"timestamp":T}.
func AppendLegacyWelcome(dst []byte, connID string, serverTime, ts int64) []byte {
	dst = append(dst, `{"type":"welcome","payload":{"connectionId":`...)
	dst = AppendJSONString(dst, connID)
	dst = append(dst, `,"serverTime":`...)
	dst = strconv.AppendInt(dst, serverTime, 10)
	dst = append(dst, '}')
	return appendTimestamp(dst, ts)
}

// AppendLegacyError appends the deployed legacy server's (A's) error frame,
// which has no code, for the reference server:
// {"type":"error","payload":{"message":M},"timestamp":T}.
func AppendLegacyError(dst []byte, message string, ts int64) []byte {
	dst = append(dst, `{"type":"error","payload":{"message":`...)
	dst = AppendJSONString(dst, message)
	dst = append(dst, '}')
	return appendTimestamp(dst, ts)
}

// AppendPong appends the reply to an application-level ping, which the
// browser frontend uses as its liveness check: {"type":"pong","timestamp":T}.
func AppendPong(dst []byte, ts int64) []byte {
	dst = append(dst, `{"type":"pong"`...)
	return appendTimestamp(dst, ts)
}

// AppendSubscribedFilter appends the acknowledgement of a filter-form
// subscribe. The filter is echoed exactly as the client sent it, so the
// client can correlate the filterId with its request: absent (nil) fields
// are omitted, an empty array is echoed as []:
// {"type":"subscribed","payload":{"filterId":"ID","filter":{"exchange":[...],"symbols":[...],"dataTypes":[...]}},"timestamp":T}.
func AppendSubscribedFilter(dst []byte, filterID string, f FilterSpec, ts int64) []byte {
	dst = append(dst, `{"type":"subscribed","payload":{"filterId":`...)
	dst = AppendJSONString(dst, filterID)
	dst = append(dst, `,"filter":{`...)
	sep := ""
	for _, fld := range [...]struct {
		name string
		v    []string
	}{{"exchange", f.Exchange}, {"symbols", f.Symbols}, {"dataTypes", f.DataTypes}} {
		if fld.v == nil {
			continue
		}
		dst = append(dst, sep...)
		dst = append(dst, '"')
		dst = append(dst, fld.name...)
		dst = append(dst, `":`...)
		dst = appendStrings(dst, fld.v)
		sep = ","
	}
	dst = append(dst, `}}`...)
	return appendTimestamp(dst, ts)
}

// AppendSubscribedChannel appends the acknowledgement of a legacy
// channel-form subscribe:
// {"type":"subscribed","payload":{"channel":"marketData"},"timestamp":T}.
func AppendSubscribedChannel(dst []byte, channel string, ts int64) []byte {
	return appendChannelReply(dst, `{"type":"subscribed","payload":{"channel":`, channel, ts)
}

// AppendUnsubscribedFilter appends the acknowledgement of a filter-form
// unsubscribe: {"type":"unsubscribed","payload":{"filterId":"ID"},"timestamp":T}.
// An empty filterID means every filter was removed, which the legacy shape
// reports by omitting filterId: {"type":"unsubscribed","payload":{},"timestamp":T}.
func AppendUnsubscribedFilter(dst []byte, filterID string, ts int64) []byte {
	if filterID == "" {
		dst = append(dst, `{"type":"unsubscribed","payload":{}`...)
		return appendTimestamp(dst, ts)
	}
	dst = append(dst, `{"type":"unsubscribed","payload":{"filterId":`...)
	dst = AppendJSONString(dst, filterID)
	dst = append(dst, '}')
	return appendTimestamp(dst, ts)
}

// AppendUnsubscribedChannel appends the acknowledgement of a legacy
// channel-form unsubscribe:
// {"type":"unsubscribed","payload":{"channel":"marketData"},"timestamp":T}.
func AppendUnsubscribedChannel(dst []byte, channel string, ts int64) []byte {
	return appendChannelReply(dst, `{"type":"unsubscribed","payload":{"channel":`, channel, ts)
}

// AppendStats appends the reply to getStats,
// {"type":"stats","payload":STATS,"timestamp":T}, where STATS is
// json.Marshal(stats). Statistics are rare and their shape belongs to the
// packages that collect them, so encoding/json is used here rather than a
// hand-written encoder. On error dst is returned unchanged.
func AppendStats(dst []byte, stats any, ts int64) ([]byte, error) {
	payload, err := json.Marshal(stats)
	if err != nil {
		return dst, fmt.Errorf("compat: encode stats: %w", err)
	}
	dst = append(dst, `{"type":"stats","payload":`...)
	dst = append(dst, payload...)
	return appendTimestamp(dst, ts), nil
}

// AppendError appends a protocol error report; code is one of the Code*
// constants. Legacy clients ignore the unknown "error" type, so this is safe
// to send to any client:
// {"type":"error","payload":{"code":C,"message":M},"timestamp":T}.
func AppendError(dst []byte, code, message string, ts int64) []byte {
	dst = append(dst, `{"type":"error","payload":{"code":`...)
	dst = AppendJSONString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = AppendJSONString(dst, message)
	dst = append(dst, '}')
	return appendTimestamp(dst, ts)
}

// AppendData appends the legacy data message, the frame every market data
// update is delivered in, with exactly the legacy server's five payload keys:
//
//	{"type":T,"payload":{"type":T,"exchange":E,"symbol":S,"data":DATA,"timestamp":TS},"timestamp":forwardedAt}
//
// md.Data and the pipeline's timestamp (md.TimestampRaw when set, else
// md.Timestamp) are written verbatim: clients expect them exactly as the
// pipeline produced them. Keys the pipeline did not send stay absent: an
// empty Exchange or Symbol and an empty Data are omitted (a Data of null is
// written as null). forwardedAt is the time the proxy forwarded the message;
// callers stamp it once per message and share the encoded bytes among
// recipients.
func AppendData(dst []byte, md *dataflow.MarketData, forwardedAt int64) []byte {
	return appendData(dst, md, forwardedAt, false)
}

// AppendDataWithMetadata is AppendData plus B's "metadata" payload key (the
// pipeline's metadata object, when it sent one), for compat.forward_metadata.
func AppendDataWithMetadata(dst []byte, md *dataflow.MarketData, forwardedAt int64) []byte {
	return appendData(dst, md, forwardedAt, true)
}

func appendData(dst []byte, md *dataflow.MarketData, forwardedAt int64, metadata bool) []byte {
	dst = append(dst, `{"type":`...)
	dst = AppendJSONString(dst, md.Type)
	dst = append(dst, `,"payload":{"type":`...)
	dst = AppendJSONString(dst, md.Type)
	if md.Exchange != "" {
		dst = append(dst, `,"exchange":`...)
		dst = AppendJSONString(dst, md.Exchange)
	}
	if md.Symbol != "" {
		dst = append(dst, `,"symbol":`...)
		dst = AppendJSONString(dst, md.Symbol)
	}
	if !blank(md.Data) {
		dst = append(dst, `,"data":`...)
		dst = append(dst, md.Data...)
	}
	dst = append(dst, `,"timestamp":`...)
	if !blank(md.TimestampRaw) {
		dst = append(dst, md.TimestampRaw...)
	} else {
		dst = strconv.AppendInt(dst, md.Timestamp, 10)
	}
	if metadata && !blank(md.Metadata) {
		dst = append(dst, `,"metadata":`...)
		dst = append(dst, md.Metadata...)
	}
	dst = append(dst, '}')
	return appendTimestamp(dst, forwardedAt)
}

// blank reports whether raw holds nothing but whitespace.
func blank(raw []byte) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return false
	}
	return true
}

// AppendBatch appends the opt-in batch envelope, sent only to clients that
// connected with /ws?batch=1:
// {"type":"batch","messages":[m0,m1,...],"count":N,"timestamp":T}.
// Each message is an already-encoded data message (from AppendData) and is
// copied verbatim, so a message is encoded once whether or not it is batched.
// An empty element is written as null so the frame stays valid JSON.
func AppendBatch(dst []byte, messages [][]byte, ts int64) []byte {
	dst = append(dst, `{"type":"batch","messages":[`...)
	for i, m := range messages {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendRaw(dst, m)
	}
	dst = append(dst, `],"count":`...)
	dst = strconv.AppendInt(dst, int64(len(messages)), 10)
	return appendTimestamp(dst, ts)
}

// appendTimestamp closes a top-level object with its "timestamp" field.
func appendTimestamp(dst []byte, ts int64) []byte {
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

func appendChannelReply(dst []byte, prefix, channel string, ts int64) []byte {
	dst = append(dst, prefix...)
	dst = AppendJSONString(dst, channel)
	dst = append(dst, '}')
	return appendTimestamp(dst, ts)
}

// appendStrings appends ss as a JSON array of strings; nil is written as [].
func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, s)
	}
	return append(dst, ']')
}

// appendRaw appends an already-encoded JSON value, or null when raw holds
// nothing but whitespace.
func appendRaw(dst, raw []byte) []byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return append(dst, raw...)
	}
	return append(dst, "null"...)
}
