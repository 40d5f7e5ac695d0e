package loadtest

import (
	"testing"
	"time"
)

func TestBucketsCoverValuesInOrder(t *testing.T) {
	prev := -1
	for _, us := range []uint64{0, 1, 63, 64, 65, 100, 1000, 12345, 1 << 20, 1 << 40} {
		b := bucketOf(us)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d, below the previous %d", us, b, prev)
		}
		if bucketValue(b) < us {
			t.Fatalf("bucketValue(bucketOf(%d)) = %d, below the value", us, bucketValue(b))
		}
		if us > 64 && float64(bucketValue(b)-us) > 0.04*float64(us) {
			t.Fatalf("bucket of %d ends at %d: resolution worse than 4%%", us, bucketValue(b))
		}
		prev = b
	}
}

func TestQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	s := h.sparse()
	tests := []struct {
		name string
		q    float64
		want float64 // ms
	}{
		{name: "p50", q: 0.50, want: 500},
		{name: "p99", q: 0.99, want: 990},
		{name: "max", q: 1, want: 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Quantile(tc.q)
			if got < tc.want || got > tc.want*1.04 {
				t.Fatalf("Quantile(%.2f) = %.1f ms, want %.0f ms (+4%%)", tc.q, got, tc.want)
			}
		})
	}
}

func TestSentAt(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		ok   bool
	}{
		{name: "data frame", in: `{"type":"trade","payload":{"data":{"seq":1,"pad":"","sentAt":1723190400000000001}}}`, want: 1723190400000000001, ok: true},
		{name: "welcome", in: `{"type":"welcome"}`},
		{name: "no digits", in: `{"sentAt":x}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := sentAt([]byte(tc.in))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("sentAt = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestGroupsFollowTheMix(t *testing.T) {
	u := Universe{Exchanges: []string{"a", "b"}, Symbols: []string{"S1"}}
	m := Mix{All: 1, Exchange: 2, Symbol: 1}
	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		k, sub := groupOf(i, m, u)
		if (k == "all") != (sub == "") {
			t.Fatalf("conn %d: group %q with subscribe %q", i, k, sub)
		}
		counts[k]++
	}
	want := map[string]int{"all": 100, "ex:a": 100, "ex:b": 100, "sym:S1": 100}
	for k, n := range want {
		if counts[k] != n {
			t.Fatalf("groups %v, want %v", counts, want)
		}
	}
}
