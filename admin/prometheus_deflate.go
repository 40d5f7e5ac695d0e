package admin

import "github.com/prometheus/client_golang/prometheus"

// deflateCollector exports the permessage-deflate counters; it exports
// nothing while compression is off.
type deflateCollector struct {
	p                                 Provider
	in, out, ratio, compressed, plain *prometheus.Desc
	streams, resets, conns            *prometheus.Desc
}

func newDeflateCollector(p Provider) *deflateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("wsproxy_compression_"+name, help, labels, nil)
	}
	return &deflateCollector{
		p:          p,
		in:         d("bytes_in_total", "Data payload bytes to compressing connections, before compression."),
		out:        d("bytes_out_total", "Data payload bytes to compressing connections, as sent (after compression)."),
		ratio:      d("ratio", "bytes_out_total / bytes_in_total."),
		compressed: d("frames_compressed_total", "Frames sent compressed."),
		plain:      d("frames_uncompressed_total", "Frames sent uncompressed to compressing connections, by reason.", "reason"),
		streams:    d("streams_active", "Shared compressor streams in use (shared_stream mode)."),
		resets:     d("stream_resets_total", "Shared stream generations started (join points)."),
		conns:      d("connections", "Live connections that negotiated permessage-deflate."),
	}
}

func (c *deflateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.in, c.out, c.ratio, c.compressed, c.plain, c.streams, c.resets, c.conns} {
		ch <- d
	}
}

func (c *deflateCollector) Collect(ch chan<- prometheus.Metric) {
	z := c.p.Stats().Pool.Compression
	if z == nil {
		return
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.in, z.BytesIn)
	counter(c.out, z.BytesOut)
	gauge(c.ratio, z.Ratio)
	counter(c.compressed, z.FramesCompressed)
	for reason, n := range z.Uncompressed {
		counter(c.plain, n, reason)
	}
	gauge(c.streams, float64(z.StreamsActive))
	counter(c.resets, z.StreamResets)
	gauge(c.conns, float64(z.Connections))
}
