package subscription_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"wsproxy/config"
	"wsproxy/internal/configtest"
	"wsproxy/subscription"
)

// sub is a subscriber handle, a pointer as in production.
type sub struct {
	name  string
	stamp uint64 // last message delivered, for deduplication in benchmarks
}

func (s *sub) String() string { return s.name }

func newSubs(n int) []*sub {
	out := make([]*sub, n)
	for i := range out {
		out[i] = &sub{name: fmt.Sprintf("s%d", i)}
	}
	return out
}

func mustFilter(tb testing.TB, ex, sym, types []string) subscription.Filter {
	tb.Helper()
	f, err := subscription.NewFilter(ex, sym, types, configtest.Limits(subscription.Limits{}))
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func mustAdd[T comparable](tb testing.TB, ix *subscription.Index[T], s T, f subscription.Filter) string {
	tb.Helper()
	id, err := ix.Add(s, f, configtest.Limits(subscription.Limits{}))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// matchSet returns Match's recipients once each, checking that no list holds
// a subscriber twice.
func matchSet[T comparable](tb testing.TB, ix *subscription.Index[T], e, d, s string) map[T]int {
	tb.Helper()
	m := ix.Match(e, d, s)
	got := make(map[T]int)
	total := 0
	lists := m.AppendLists(nil)
	if len(lists) != m.NumLists() {
		tb.Fatalf("AppendLists gave %d lists, NumLists() = %d", len(lists), m.NumLists())
	}
	for i, l := range lists {
		if !slices.Equal(m.List(i), l) {
			tb.Fatalf("List(%d) differs from AppendLists", i)
		}
		if len(l) == 0 {
			tb.Fatalf("Match(%q,%q,%q): list %d is empty", e, d, s, i)
		}
		seen := make(map[T]bool, len(l))
		for _, x := range l {
			if seen[x] {
				tb.Fatalf("Match(%q,%q,%q): %v twice in list %d", e, d, s, x, i)
			}
			seen[x] = true
			got[x]++
			total++
		}
	}
	if m.Len() != total {
		tb.Fatalf("Len() = %d; lists hold %d", m.Len(), total)
	}
	n := 0
	m.ForEach(func(T) { n++ })
	if n != total {
		tb.Fatalf("ForEach visited %d, want %d", n, total)
	}
	return got
}

func keysOf[T comparable](m map[T]int) map[T]bool {
	out := make(map[T]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func TestIndexMatchBasics(t *testing.T) {
	subs := newSubs(6)
	ix := subscription.NewIndex[*sub]()
	mustAdd(t, ix, subs[0], mustFilter(t, []string{"binance"}, []string{"btc/usdt"}, []string{"trade"}))
	mustAdd(t, ix, subs[1], mustFilter(t, nil, []string{"BTCUSDT"}, nil))
	mustAdd(t, ix, subs[2], mustFilter(t, []string{"okx"}, nil, nil))
	mustAdd(t, ix, subs[3], mustFilter(t, nil, nil, []string{"kline"}))
	mustAdd(t, ix, subs[4], mustFilter(t, nil, nil, nil))
	ix.SetUnfiltered(subs[5], true)

	tests := []struct {
		name                  string
		exchange, typ, symbol string
		want                  []*sub
	}{
		{"exact", "binance", "trade", "BTCUSDT", []*sub{subs[0], subs[1], subs[4], subs[5]}},
		{"other type", "binance", "ticker", "BTCUSDT", []*sub{subs[1], subs[4], subs[5]}},
		{"exchange only", "okx", "depth", "ETHUSDT", []*sub{subs[2], subs[4], subs[5]}},
		{"kline alias", "bybit", "kline_5m", "ETHUSDT", []*sub{subs[3], subs[4], subs[5]}},
		{"nothing specific", "bybit", "trade", "ETHUSDT", []*sub{subs[4], subs[5]}},
		{"unknown type", "okx", "kline_15m", "BTCUSDT", []*sub{subs[1], subs[2], subs[4], subs[5]}},
		{"empty message fields", "", "", "", []*sub{subs[4], subs[5]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keysOf(matchSet(t, ix, tt.exchange, tt.typ, tt.symbol))
			want := make(map[*sub]bool)
			for _, s := range tt.want {
				want[s] = true
			}
			if !maps.Equal(got, want) {
				t.Fatalf("Match = %v, want %v", got, want)
			}
		})
	}
}

func TestIndexOverlappingFilters(t *testing.T) {
	a, b := &sub{name: "a"}, &sub{name: "b"}
	ix := subscription.NewIndex[*sub]()
	// Three filters of a match (binance, trade, BTCUSDT) through different keys,
	// two more through the same key as the first.
	mustAdd(t, ix, a, mustFilter(t, []string{"binance"}, []string{"BTCUSDT"}, []string{"trade"}))
	mustAdd(t, ix, a, mustFilter(t, []string{"binance"}, nil, nil))
	mustAdd(t, ix, a, mustFilter(t, nil, []string{"btc-usdt"}, nil))
	id4 := mustAdd(t, ix, a, mustFilter(t, []string{"binance"}, []string{"BTCUSDT"}, []string{"trade", "ticker"}))
	mustAdd(t, ix, a, mustFilter(t, []string{"binance", "okx"}, []string{"btc/usdt"}, []string{"kline", "trade"}))
	mustAdd(t, ix, b, mustFilter(t, []string{"okx"}, nil, nil))

	got := matchSet(t, ix, "binance", "trade", "BTCUSDT")
	if !maps.Equal(keysOf(got), map[*sub]bool{a: true}) {
		t.Fatalf("recipients = %v, want only a", got)
	}
	if got[a] != 3 {
		t.Fatalf("a appears %d times, want 3 (once per matching key)", got[a])
	}
	// Removing one of the filters sharing a key keeps a on that key.
	if !ix.Remove(a, id4) {
		t.Fatal("Remove failed")
	}
	if got := matchSet(t, ix, "binance", "trade", "BTCUSDT"); got[a] != 3 {
		t.Fatalf("after Remove a appears %d times, want 3", got[a])
	}
	if got := matchSet(t, ix, "binance", "ticker", "BTCUSDT"); got[a] != 2 {
		t.Fatalf("ticker: a appears %d times, want 2", got[a])
	}
}

func TestIndexRemove(t *testing.T) {
	a, b := &sub{name: "a"}, &sub{name: "b"}
	f := mustFilter(t, []string{"binance"}, []string{"BTCUSDT"}, nil)
	tests := []struct {
		name      string
		run       func(t *testing.T, ix *subscription.Index[*sub], idA, idB string)
		wantA     bool
		wantB     bool
		wantStats subscription.Stats
	}{
		{
			name: "remove one",
			run: func(t *testing.T, ix *subscription.Index[*sub], idA, idB string) {
				if !ix.Remove(a, idA) {
					t.Fatal("Remove(a) = false")
				}
			},
			wantB: true, wantStats: subscription.Stats{Subscribers: 1, Filters: 1, Keys: 1, Changes: 3},
		},
		{
			name: "remove twice",
			run: func(t *testing.T, ix *subscription.Index[*sub], idA, idB string) {
				ix.Remove(a, idA)
				if ix.Remove(a, idA) {
					t.Fatal("second Remove = true")
				}
			},
			wantB: true, wantStats: subscription.Stats{Subscribers: 1, Filters: 1, Keys: 1, Changes: 3},
		},
		{
			name: "wrong subscriber or id",
			run: func(t *testing.T, ix *subscription.Index[*sub], idA, idB string) {
				if ix.Remove(&sub{name: "c"}, idA) || ix.Remove(a, "99") || ix.Remove(a, "") {
					t.Fatal("Remove of unknown filter = true")
				}
			},
			wantA: true, wantB: true, wantStats: subscription.Stats{Subscribers: 2, Filters: 2, Keys: 1, Changes: 2},
		},
		{
			name: "remove all",
			run: func(t *testing.T, ix *subscription.Index[*sub], idA, idB string) {
				mustAdd(t, ix, a, mustFilter(t, nil, nil, []string{"trade"}))
				if n := ix.RemoveAll(a); n != 2 {
					t.Fatalf("RemoveAll = %d, want 2", n)
				}
				if n := ix.RemoveAll(a); n != 0 {
					t.Fatalf("second RemoveAll = %d, want 0", n)
				}
			},
			wantB: true, wantStats: subscription.Stats{Subscribers: 1, Filters: 1, Keys: 1, Changes: 4},
		},
		{
			name: "everything removed",
			run: func(t *testing.T, ix *subscription.Index[*sub], idA, idB string) {
				ix.RemoveAll(a)
				ix.RemoveSubscriber(b)
			},
			wantStats: subscription.Stats{Changes: 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := subscription.NewIndex[*sub]()
			idA, idB := mustAdd(t, ix, a, f), mustAdd(t, ix, b, f)
			tt.run(t, ix, idA, idB)
			got := keysOf(matchSet(t, ix, "binance", "trade", "BTCUSDT"))
			if got[a] != tt.wantA || got[b] != tt.wantB || len(got) != btoi(tt.wantA)+btoi(tt.wantB) {
				t.Fatalf("recipients = %v, want a:%v b:%v", got, tt.wantA, tt.wantB)
			}
			st := ix.Stats()
			if st.Publications != st.Changes || st.LastActivity == 0 {
				t.Fatalf("sequential writes: Stats = %+v", st)
			}
			st.MatchOperations, st.LastActivity, st.Publications = 0, 0, 0
			if st != tt.wantStats {
				t.Fatalf("Stats = %+v, want %+v", st, tt.wantStats)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestIndexFilterIDs(t *testing.T) {
	a, b := &sub{name: "a"}, &sub{name: "b"}
	ix := subscription.NewIndex[*sub]()
	f := mustFilter(t, nil, nil, []string{"trade"})
	if id := mustAdd(t, ix, a, f); id != "1" {
		t.Fatalf("first id = %q, want 1", id)
	}
	if id := mustAdd(t, ix, a, f); id != "2" {
		t.Fatalf("second id = %q, want 2", id)
	}
	if id := mustAdd(t, ix, b, f); id != "1" {
		t.Fatalf("other subscriber's first id = %q, want 1", id)
	}
	ix.Remove(a, "1")
	if id := mustAdd(t, ix, a, f); id != "3" {
		t.Fatalf("id after a removal = %q, want 3 (ids are not reused)", id)
	}
	got := ix.Filters(a)
	if !slices.Equal(slices.Sorted(maps.Keys(got)), []string{"2", "3"}) {
		t.Fatalf("Filters ids = %v", slices.Sorted(maps.Keys(got)))
	}
	// Filters returns a copy.
	got["2"].DataTypes[0] = "ticker"
	if ix.Filters(a)["2"].DataTypes[0] != "trade" {
		t.Fatal("Filters does not copy")
	}
	if ix.Filters(&sub{name: "none"}) != nil {
		t.Fatal("Filters of an unknown subscriber is not nil")
	}
}

func TestIndexMaxFilters(t *testing.T) {
	tests := []struct {
		name string
		lim  subscription.Limits
		want int
	}{
		{"default", configtest.Limits(subscription.Limits{}), config.DefaultMaxFilters},
		{"custom", configtest.Limits(subscription.Limits{MaxFilters: 3}), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &sub{name: "a"}
			ix := subscription.NewIndex[*sub]()
			f := mustFilter(t, nil, []string{"BTCUSDT"}, nil)
			for i := range tt.want {
				if _, err := ix.Add(a, f, tt.lim); err != nil {
					t.Fatalf("Add #%d: %v", i+1, err)
				}
			}
			if _, err := ix.Add(a, f, tt.lim); !errors.Is(err, subscription.ErrLimitExceeded) {
				t.Fatalf("Add over limit: %v, want ErrLimitExceeded", err)
			}
			if n := len(ix.Filters(a)); n != tt.want {
				t.Fatalf("%d filters, want %d", n, tt.want)
			}
			// Another subscriber is not affected; removing one makes room.
			if _, err := ix.Add(&sub{name: "b"}, f, tt.lim); err != nil {
				t.Fatalf("other subscriber: %v", err)
			}
			ix.Remove(a, "1")
			if _, err := ix.Add(a, f, tt.lim); err != nil {
				t.Fatalf("Add after Remove: %v", err)
			}
		})
	}
}

func TestIndexAddRejectsEmptyValue(t *testing.T) {
	ix := subscription.NewIndex[*sub]()
	_, err := ix.Add(&sub{name: "a"}, subscription.Filter{Symbols: []string{""}}, configtest.Limits(subscription.Limits{}))
	if !errors.Is(err, subscription.ErrInvalidFilter) {
		t.Fatalf("Add = %v, want ErrInvalidFilter", err)
	}
}

func TestIndexUnfiltered(t *testing.T) {
	a, b := &sub{name: "a"}, &sub{name: "b"}
	ix := subscription.NewIndex[*sub]()
	recipients := func() map[*sub]int { return matchSet(t, ix, "okx", "trade", "ETHUSDT") }

	ix.SetUnfiltered(a, true)
	ix.SetUnfiltered(a, true) // idempotent
	if got := recipients(); got[a] != 1 || len(got) != 1 {
		t.Fatalf("unfiltered a: %v", got)
	}
	if !ix.Unfiltered(a) || ix.Unfiltered(b) {
		t.Fatal("Unfiltered() wrong")
	}
	// A filter that matches everything shares the all-wildcard key.
	mustAdd(t, ix, b, mustFilter(t, nil, nil, nil))
	mustAdd(t, ix, a, mustFilter(t, nil, nil, nil))
	if got := recipients(); got[a] != 1 || got[b] != 1 {
		t.Fatalf("want a and b once each: %v", got)
	}
	// RemoveAll leaves the mark.
	ix.RemoveAll(a)
	if got := recipients(); got[a] != 1 {
		t.Fatalf("mark lost by RemoveAll: %v", got)
	}
	if st := ix.Stats(); st.Subscribers != 2 || st.Unfiltered != 1 || st.Filters != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	ix.SetUnfiltered(a, false)
	ix.SetUnfiltered(a, false)
	ix.SetUnfiltered(&sub{name: "never"}, false)
	if got := recipients(); got[a] != 0 || got[b] != 1 {
		t.Fatalf("after clearing: %v", got)
	}
	// RemoveSubscriber clears filters and mark in one go.
	ix.SetUnfiltered(b, true)
	if n := ix.RemoveSubscriber(b); n != 1 {
		t.Fatalf("RemoveSubscriber = %d, want 1", n)
	}
	if got := recipients(); len(got) != 0 {
		t.Fatalf("after RemoveSubscriber: %v", got)
	}
	if st := ix.Stats(); st.Subscribers != 0 || st.Unfiltered != 0 || st.Filters != 0 || st.Keys != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestIndexStats(t *testing.T) {
	ix := subscription.NewIndex[*sub]()
	if st := ix.Stats(); st != (subscription.Stats{}) {
		t.Fatalf("empty Stats = %+v", st)
	}
	a := &sub{name: "a"}
	// 2 exchanges × (kline + 4 kline types) × 3 symbols.
	mustAdd(t, ix, a, mustFilter(t, []string{"binance", "okx"}, []string{"A", "B", "C"}, []string{"kline"}))
	ix.SetUnfiltered(&sub{name: "b"}, true)
	for range 5 {
		ix.Match("binance", "trade", "A")
	}
	st := ix.Stats()
	if st.Subscribers != 2 || st.Filters != 1 || st.Unfiltered != 1 || st.Keys != 2*5*3+1 || st.MatchOperations != 5 || st.LastActivity == 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

// model is the reference implementation: every subscriber's filters, checked
// one by one with Filter.Matches.
type model struct {
	filters    map[*sub]map[string]subscription.Filter
	unfiltered map[*sub]bool
}

func (m *model) want(e, d, s string) map[*sub]bool {
	out := make(map[*sub]bool)
	for x := range m.unfiltered {
		out[x] = true
	}
	for x, fs := range m.filters {
		for _, f := range fs {
			if f.Matches(e, d, s) {
				out[x] = true
			}
		}
	}
	return out
}

var (
	universeExchanges = []string{"binance", "okx", "bybit", "coinbase"}
	universeSymbols   = []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BTCUSD"}
	universeTypes     = append(slices.Clone(subscription.DataTypes), "kline")

	// Messages also carry values no filter names.
	messageExchanges = append(slices.Clone(universeExchanges), "kraken")
	messageSymbols   = append(slices.Clone(universeSymbols), "ADAUSDT")
	messageTypes     = append(slices.Clone(subscription.DataTypes), "kline_15m", "kline", "funding")
)

func pick(r *rand.Rand, from []string, max int) []string {
	n := r.IntN(max + 1)
	out := make([]string, 0, n)
	for range n {
		out = append(out, from[r.IntN(len(from))])
	}
	return out
}

func randomFilter(tb testing.TB, r *rand.Rand) subscription.Filter {
	tb.Helper()
	syms := pick(r, universeSymbols, 3)
	for i, s := range syms { // spell symbols the ways clients do
		switch r.IntN(3) {
		case 0:
			syms[i] = s[:3] + "/" + s[3:]
		case 1:
			syms[i] = s[:3] + "-" + s[3:]
		}
	}
	return mustFilter(tb, pick(r, universeExchanges, 2), syms, pick(r, universeTypes, 2))
}

func randomMessage(r *rand.Rand) (string, string, string) {
	return messageExchanges[r.IntN(len(messageExchanges))],
		messageTypes[r.IntN(len(messageTypes))],
		messageSymbols[r.IntN(len(messageSymbols))]
}

// TestIndexMatchesBruteForce applies random changes and checks Match against
// the reference after every round.
func TestIndexMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	subs := newSubs(150)
	ix := subscription.NewIndex[*sub]()
	ref := &model{filters: make(map[*sub]map[string]subscription.Filter), unfiltered: make(map[*sub]bool)}

	for round := range 60 {
		for range 40 {
			s := subs[r.IntN(len(subs))]
			switch op := r.IntN(10); {
			case op < 5:
				f := randomFilter(t, r)
				id, err := ix.Add(s, f, configtest.Limits(subscription.Limits{MaxFilters: 6}))
				if errors.Is(err, subscription.ErrLimitExceeded) {
					if len(ref.filters[s]) != 6 {
						t.Fatalf("limit hit with %d filters", len(ref.filters[s]))
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if ref.filters[s] == nil {
					ref.filters[s] = make(map[string]subscription.Filter)
				}
				if _, dup := ref.filters[s][id]; dup {
					t.Fatalf("id %q reused", id)
				}
				ref.filters[s][id] = f
			case op < 7:
				ids := slices.Sorted(maps.Keys(ref.filters[s]))
				id := "404"
				if len(ids) > 0 {
					id = ids[r.IntN(len(ids))]
				}
				_, want := ref.filters[s][id]
				if got := ix.Remove(s, id); got != want {
					t.Fatalf("Remove(%v, %q) = %v, want %v", s, id, got, want)
				}
				delete(ref.filters[s], id)
			case op < 8:
				if n := ix.RemoveAll(s); n != len(ref.filters[s]) {
					t.Fatalf("RemoveAll = %d, want %d", n, len(ref.filters[s]))
				}
				delete(ref.filters, s)
			case op < 9:
				on := r.IntN(2) == 0
				ix.SetUnfiltered(s, on)
				if on {
					ref.unfiltered[s] = true
				} else {
					delete(ref.unfiltered, s)
				}
			default:
				ix.RemoveSubscriber(s)
				delete(ref.filters, s)
				delete(ref.unfiltered, s)
			}
		}
		for range 200 {
			e, d, s := randomMessage(r)
			got := keysOf(matchSet(t, ix, e, d, s))
			if want := ref.want(e, d, s); !maps.Equal(got, want) {
				t.Fatalf("round %d: Match(%q,%q,%q) = %v, want %v", round, e, d, s, got, want)
			}
		}
		for _, s := range subs {
			got := ix.Filters(s)
			if len(got) != len(ref.filters[s]) {
				t.Fatalf("round %d: Filters(%v) has %d, want %d", round, s, len(got), len(ref.filters[s]))
			}
		}
	}
}

// TestIndexConcurrent runs writers and readers together (meant for -race).
// Subscribers whose filters never change must be found by every Match, while
// other subscribers come and go around them.
func TestIndexConcurrent(t *testing.T) {
	ix := subscription.NewIndex[*sub]()
	stable := newSubs(20)
	for i, s := range stable {
		if i%2 == 0 {
			ix.SetUnfiltered(s, true)
		} else {
			mustAdd(t, ix, s, mustFilter(t, []string{"binance"}, nil, []string{"trade"}))
		}
	}
	const writers, readers, iterations = 4, 4, 300
	var wg sync.WaitGroup
	var failed atomic.Bool
	var stop atomic.Bool
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			mine := newSubs(30)
			for i := range iterations {
				s := mine[r.IntN(len(mine))]
				switch r.IntN(5) {
				case 0, 1:
					if _, err := ix.Add(s, randomFilter(t, r), configtest.Limits(subscription.Limits{})); err != nil && !errors.Is(err, subscription.ErrLimitExceeded) {
						t.Error(err)
					}
				case 2:
					ix.Remove(s, fmt.Sprint(1+r.IntN(5)))
				case 3:
					ix.SetUnfiltered(s, i%2 == 0)
				case 4:
					ix.RemoveSubscriber(s)
				}
			}
			for _, s := range mine {
				ix.RemoveSubscriber(s)
			}
		})
	}
	var rwg sync.WaitGroup
	for range readers {
		rwg.Go(func() {
			for !stop.Load() && !failed.Load() {
				m := ix.Match("binance", "trade", "BTCUSDT")
				seen := make(map[*sub]bool)
				m.ForEach(func(s *sub) { seen[s] = true })
				for _, s := range stable {
					if !seen[s] {
						failed.Store(true)
						t.Errorf("stable subscriber %v missing", s)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	rwg.Wait()

	got := keysOf(matchSet(t, ix, "binance", "trade", "BTCUSDT"))
	if len(got) != len(stable) {
		t.Fatalf("after writers: %d recipients, want %d", len(got), len(stable))
	}
	if st := ix.Stats(); st.Subscribers != len(stable) || st.Filters != len(stable)/2 || st.Unfiltered != len(stable)/2 {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestIndexConcurrentBurst has many subscribers join and leave a shared key
// at once, and checks that every change is applied exactly once.
func TestIndexConcurrentBurst(t *testing.T) {
	ix := subscription.NewIndex[*sub]()
	subs := newSubs(2000)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(subs)); i = next.Add(1) - 1 {
				ix.SetUnfiltered(subs[i], true)
				if i%3 == 0 {
					mustAdd(t, ix, subs[i], mustFilter(t, nil, []string{"BTCUSDT"}, nil))
				}
			}
		})
	}
	wg.Wait()
	if got := matchSet(t, ix, "okx", "trade", "BTCUSDT"); len(got) != len(subs) {
		t.Fatalf("%d recipients, want %d", len(got), len(subs))
	}
	next.Store(0)
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(subs)); i = next.Add(1) - 1 {
				if i%2 == 0 {
					ix.RemoveSubscriber(subs[i])
				}
			}
		})
	}
	wg.Wait()
	got := matchSet(t, ix, "okx", "trade", "BTCUSDT")
	if len(got) != len(subs)/2 {
		t.Fatalf("%d recipients, want %d", len(got), len(subs)/2)
	}
	for i, s := range subs {
		if _, ok := got[s]; ok != (i%2 == 1) {
			t.Fatalf("subscriber %d present = %v", i, ok)
		}
	}
}

func TestIndexKeysShrink(t *testing.T) {
	ix := subscription.NewIndex[*sub]()
	subs := newSubs(200)
	for i, s := range subs {
		mustAdd(t, ix, s, mustFilter(t, nil, []string{fmt.Sprintf("SYM%d", i)}, []string{"trade", "ticker"}))
	}
	if k := ix.Stats().Keys; k != 400 {
		t.Fatalf("Keys = %d, want 400", k)
	}
	for _, s := range subs[:190] {
		ix.RemoveAll(s)
	}
	if k := ix.Stats().Keys; k != 20 {
		t.Fatalf("Keys = %d, want 20", k)
	}
	for i, s := range subs {
		got := matchSet(t, ix, "binance", "ticker", fmt.Sprintf("SYM%d", i))
		if want := i >= 190; (got[s] == 1) != want || len(got) != btoi(want) {
			t.Fatalf("SYM%d: %v", i, got)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	ix := subscription.NewIndex[*sub]()
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range newSubs(300) {
		mustAdd(t, ix, s, randomFilter(t, r))
	}
	ix.SetUnfiltered(&sub{name: "u"}, true)
	var n int
	count := func(*sub) { n++ }
	buf := make([][]*sub, 0, 64)
	for _, msg := range [][3]string{{"binance", "trade", "BTCUSDT"}, {"kraken", "funding", "ADAUSDT"}, {"", "", ""}} {
		allocs := testing.AllocsPerRun(200, func() {
			m := ix.Match(msg[0], msg[1], msg[2])
			m.ForEach(count)
			for i := range m.NumLists() {
				n += len(m.List(i))
			}
			buf = m.AppendLists(buf[:0])
			m.Chunks(7, func(c []*sub) { n += len(c) })
		})
		if allocs != 0 {
			t.Errorf("Match%v allocates %v times, want 0", msg, allocs)
		}
	}
}

func TestMatchesChunks(t *testing.T) {
	ix := subscription.NewIndex[*sub]()
	subs := newSubs(25)
	for i, s := range subs {
		if i < 10 {
			mustAdd(t, ix, s, mustFilter(t, []string{"binance"}, nil, nil))
		} else {
			ix.SetUnfiltered(s, true)
		}
	}
	m := ix.Match("binance", "trade", "BTCUSDT")
	tests := []struct {
		name       string
		size       int
		wantChunks int
	}{
		{"whole lists", 0, 2},
		{"size 4", 4, 3 + 4},
		{"size 100", 100, 2},
		{"size 1", 1, 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(map[*sub]int)
			chunks := 0
			m.Chunks(tt.size, func(c []*sub) {
				chunks++
				if len(c) == 0 || (tt.size > 0 && len(c) > tt.size) {
					t.Fatalf("chunk of %d", len(c))
				}
				for _, s := range c {
					seen[s]++
				}
			})
			if chunks != tt.wantChunks || len(seen) != 25 {
				t.Fatalf("%d chunks covering %d, want %d covering 25", chunks, len(seen), tt.wantChunks)
			}
		})
	}
}
