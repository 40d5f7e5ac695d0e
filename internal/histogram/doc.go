// Package histogram records durations into fixed log-linear buckets with
// atomic counters: recording takes no lock and allocates nothing, so it can
// run once per delivered frame on the writers' path.
//
// Each power of two is split into 16 linear sub-buckets, so a quantile read
// back is within 6.25 % of the recorded value (values under 32 ns are exact).
// A second, small set of boundaries chosen by the caller (Prometheus "le"
// values) is counted exactly, for exposition.
package histogram
