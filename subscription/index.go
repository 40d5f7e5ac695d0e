package subscription

import (
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Index maps message keys to subscribers and answers Match in at most eight
// lock-free lookups. T is an opaque subscriber handle, a pointer in practice;
// the index only compares and stores it.
//
// Match may be called from any number of goroutines without locking and
// without allocating. The writes (Add, Remove, RemoveAll, RemoveSubscriber,
// SetUnfiltered) are applied one at a time by whichever writer holds the
// internal mutex, in batches (see LOCKS.md); a write is visible to every
// Match that starts after it returns. All methods are safe for concurrent
// use. An Index must not be copied after first use; the zero value is not
// ready, use NewIndex.
type Index[T comparable] struct {
	tab atomic.Pointer[table[T]] // read by every Match
	_   [120]byte                // keep the hot read-only line apart from ops
	ops atomic.Uint64            // Match calls
	_   [120]byte

	qmu   sync.Mutex
	queue []*change[T] // guarded by qmu: changes waiting for a combiner

	mu           sync.Mutex // held by the combiner; guards everything below
	spare        []*change[T]
	subs         map[T]*subscriber[T]
	dirty        []*entry[T] // entries with unpublished changes
	filters      int
	unfiltered   int
	keys         int // entries with a non-empty published list
	changes      uint64
	publications uint64
	lastActivity int64

	// counters is a copy of the counters above, stored by the combiner
	// after each batch, so that Stats takes no lock.
	counters atomic.Pointer[Stats]
}

type subscriber[T comparable] struct {
	filters    map[string]*filterRec[T]
	nextID     uint64
	unfiltered bool
}

type filterRec[T comparable] struct {
	f       Filter
	entries []*entry[T] // one reference each; kept so removal needs no lookup
}

// NewIndex returns an empty index.
func NewIndex[T comparable]() *Index[T] {
	ix := &Index[T]{subs: make(map[T]*subscriber[T])}
	ix.tab.Store(newTable[T](maphash.MakeSeed(), 16))
	ix.counters.Store(&Stats{})
	return ix
}

// Add registers filter f for subscriber s and returns the filter's id: "1",
// "2", ... in the order s's filters were added, unique among s's current
// filters. Ids restart at "1" once s holds neither a filter nor the
// unfiltered mark. f should come from NewFilter; filters of one subscriber
// may overlap. Add fails with ErrLimitExceeded when s already holds
// lim.MaxFilters filters, with ErrInvalidFilter when f holds an empty
// value, and with ErrInvalidLimits when lim.MaxFilters is not positive.
func (ix *Index[T]) Add(s T, f Filter, lim Limits) (id string, err error) {
	if lim.MaxFilters <= 0 {
		return "", fmt.Errorf("%w: MaxFilters %d", ErrInvalidLimits, lim.MaxFilters)
	}
	if err := f.validForIndex(); err != nil {
		return "", err
	}
	f = f.clone()
	c := &change[T]{kind: opAdd, s: s, f: f, keys: expand(f), maxFilters: lim.MaxFilters}
	ix.write(c)
	return c.id, c.err
}

// Remove removes the filter of s with the given id and reports whether s had
// one.
func (ix *Index[T]) Remove(s T, id string) bool {
	c := &change[T]{kind: opRemove, s: s, id: id}
	ix.write(c)
	return c.n > 0
}

// RemoveAll removes every filter of s and returns how many there were. It
// leaves the unfiltered mark alone: a connection going away calls
// RemoveSubscriber (or RemoveAll and SetUnfiltered(s, false)).
func (ix *Index[T]) RemoveAll(s T) int {
	c := &change[T]{kind: opRemoveAll, s: s}
	ix.write(c)
	return c.n
}

// RemoveSubscriber removes every filter of s and its unfiltered mark, in one
// change, and returns how many filters there were. It is what a connection
// calls when it goes away.
func (ix *Index[T]) RemoveSubscriber(s T) int {
	c := &change[T]{kind: opRemoveSubscriber, s: s}
	ix.write(c)
	return c.n
}

// SetUnfiltered marks s as a subscriber of every message (on) or clears the
// mark (off). It is idempotent and independent of s's filters: a connection
// with no filter receives everything when unfiltered_receive_all is on, and
// its owner clears the mark when adding the first filter. The mark costs one
// entry in the all-wildcard key, like a filter with every field empty.
func (ix *Index[T]) SetUnfiltered(s T, on bool) {
	ix.write(&change[T]{kind: opSetUnfiltered, s: s, on: on})
}

// Filters returns a copy of s's filters by id, for listing; nil when s has
// none.
func (ix *Index[T]) Filters(s T) map[string]Filter {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	sub := ix.subs[s]
	if sub == nil || len(sub.filters) == 0 {
		return nil
	}
	out := make(map[string]Filter, len(sub.filters))
	for id, rec := range sub.filters {
		out[id] = rec.f.clone()
	}
	return out
}

// Unfiltered reports whether s carries the unfiltered mark.
func (ix *Index[T]) Unfiltered(s T) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	sub := ix.subs[s]
	return sub != nil && sub.unfiltered
}

// Match returns the recipients of a message with the given key. The caller
// normalises the key as NewFilter normalises filters: exchange and dataType
// lower-case, symbol through NormalizeSymbol; Match does no normalisation of
// its own. It does at most eight lookups (exchange ∈ {e, *} × dataType ∈
// {t, *} × symbol ∈ {s, *}), takes no lock and does not allocate. A
// subscriber appears once per matching key: several times when several of its
// filters match through different keys. Callers deduplicate.
func (ix *Index[T]) Match(exchange, dataType, symbol string) Matches[T] {
	var m Matches[T]
	ix.ops.Add(1)
	t := ix.tab.Load()
	if t == nil {
		return m
	}
	var (
		es = [2]string{exchange, wildcard}
		ts = [2]string{dataType, wildcard}
		ss = [2]string{symbol, wildcard}
		eh = [2]uint64{t.hashString(exchange), t.wild}
		th = [2]uint64{t.hashString(dataType), t.wild}
		sh = [2]uint64{t.hashString(symbol), t.wild}
	)
	// A component that is itself the wildcard has one key, not two.
	ne, nt, ns := width(exchange), width(dataType), width(symbol)
	for i := 2 - ne; i < 2; i++ {
		for j := 2 - nt; j < 2; j++ {
			for k := 2 - ns; k < 2; k++ {
				en := t.find(combine(eh[i], th[j], sh[k]), es[i], ts[j], ss[k])
				if en == nil {
					continue
				}
				if r := en.list.Load(); r != nil {
					m.lists[m.n] = r
					m.n++
				}
			}
		}
	}
	return m
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// width returns the number of distinct key components v stands for.
func width(v string) int {
	if v == wildcard {
		return 1
	}
	return 2
}

// Stats describes the index for operators.
type Stats struct {
	// Subscribers holding at least one filter or the unfiltered mark.
	Subscribers int
	// Filters across all subscribers.
	Filters int
	// Unfiltered is the number of subscribers carrying the unfiltered mark.
	Unfiltered int
	// Keys is the number of index keys with at least one recipient.
	Keys int
	// MatchOperations counts Match calls since the index was created.
	MatchOperations uint64
	// Changes counts writes that changed the index (a no-op such as removing
	// an unknown filter is not counted), Publications the times changes were
	// made visible to readers. Concurrent writes are published together, so
	// Changes/Publications is the coalescing factor.
	Changes, Publications uint64
	// LastActivity is the time of the last change (Add, Remove, RemoveAll,
	// RemoveSubscriber, SetUnfiltered), in Unix milliseconds; 0 if none.
	LastActivity int64
}

// Stats returns a snapshot of the index's counters, as of the last
// completed batch of changes. It takes no lock: the combiner publishes the
// counters after each batch, so that monitoring never waits for, nor
// delays, a subscription change.
func (ix *Index[T]) Stats() Stats {
	st := *ix.counters.Load()
	st.MatchOperations = ix.ops.Load()
	return st
}

// expand returns the keys of f: (exchanges|*) × (data types|*) × (symbols|*),
// with KlineAlias replaced by the kline_* types.
func expand(f Filter) []key {
	exs, types, syms := orWildcard(f.Exchanges), orWildcard(f.expandTypes()), orWildcard(f.Symbols)
	keys := make([]key, 0, len(exs)*len(types)*len(syms))
	for _, e := range exs {
		for _, t := range types {
			for _, s := range syms {
				keys = append(keys, key{e, t, s})
			}
		}
	}
	return keys
}

func orWildcard(v []string) []string {
	if len(v) == 0 {
		return []string{wildcard}
	}
	return v
}

func (sub *subscriber[T]) lookup(id string) (*filterRec[T], bool) {
	if sub == nil {
		return nil, false
	}
	rec, ok := sub.filters[id]
	return rec, ok
}

// entryLocked returns the entry of k, inserting it if needed.
func (ix *Index[T]) entryLocked(k key) *entry[T] {
	t := ix.tab.Load()
	h := t.hashKey(k)
	if e := t.find(h, k.exchange, k.dataType, k.symbol); e != nil {
		return e
	}
	if 2*(t.used+1) > len(t.slots) {
		t = t.rebuiltLocked(t.used + 1)
		ix.tab.Store(t)
	}
	e := &entry[T]{key: k}
	t.insertLocked(h, e)
	return e
}

func (ix *Index[T]) incRefLocked(e *entry[T], s T) {
	if e.incRefLocked(s) {
		ix.markDirtyLocked(e)
	}
}

func (ix *Index[T]) decRefLocked(e *entry[T], s T) {
	if e.decRefLocked(s) {
		ix.markDirtyLocked(e)
	}
}

func (ix *Index[T]) markDirtyLocked(e *entry[T]) {
	if !e.dirty {
		e.dirty = true
		ix.dirty = append(ix.dirty, e)
	}
}

func (ix *Index[T]) removeFilterLocked(s T, sub *subscriber[T], id string, rec *filterRec[T]) {
	for _, e := range rec.entries {
		ix.decRefLocked(e, s)
	}
	delete(sub.filters, id)
	ix.filters--
}

// removeAllLocked removes every filter of s and returns how many there were.
func (ix *Index[T]) removeAllLocked(s T, sub *subscriber[T]) int {
	n := len(sub.filters)
	for id, rec := range sub.filters {
		ix.removeFilterLocked(s, sub, id, rec)
	}
	return n
}

func (ix *Index[T]) setUnfilteredLocked(s T, sub *subscriber[T], on bool) {
	e := ix.entryLocked(key{wildcard, wildcard, wildcard})
	sub.unfiltered = on
	if on {
		ix.incRefLocked(e, s)
		ix.unfiltered++
		return
	}
	ix.decRefLocked(e, s)
	ix.unfiltered--
}

type opKind uint8

const (
	opAdd opKind = iota
	opRemove
	opRemoveAll
	opRemoveSubscriber
	opSetUnfiltered
)

// change is one queued write and, once done, its result. The combiner fills
// in the result under mu; its caller reads it after taking mu itself.
type change[T comparable] struct {
	kind       opKind
	s          T
	on         bool   // opSetUnfiltered
	f          Filter // opAdd
	keys       []key  // opAdd: f expanded, computed before queueing
	maxFilters int    // opAdd
	id         string // opRemove: the filter; opAdd: the result
	n          int    // result: filters removed
	err        error  // result of opAdd
	done       bool
}

// write applies c and returns once c is visible to readers. Writers queue
// their change and then compete for mu; the winner, the combiner, applies
// every queued change and publishes them together. While it works, the
// others queue up behind it and the next combiner takes them all, so a burst
// of concurrent changes costs one publication per batch rather than one per
// change. A writer whose change was published by another combiner finds it
// done and returns at once.
func (ix *Index[T]) write(c *change[T]) {
	ix.qmu.Lock()
	ix.queue = append(ix.queue, c)
	ix.qmu.Unlock()

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if c.done {
		return
	}
	ix.qmu.Lock()
	batch := ix.queue
	ix.queue = ix.spare
	ix.qmu.Unlock()

	changed := 0
	for _, p := range batch {
		if ix.applyLocked(p) {
			changed++
		}
		p.done = true
	}
	if changed > 0 {
		ix.changes += uint64(changed)
		ix.lastActivity = time.Now().UnixMilli()
		ix.publishLocked()
		ix.counters.Store(&Stats{
			Subscribers:  len(ix.subs),
			Filters:      ix.filters,
			Unfiltered:   ix.unfiltered,
			Keys:         ix.keys,
			Changes:      ix.changes,
			Publications: ix.publications,
			LastActivity: ix.lastActivity,
		})
	}
	ix.spare = resetBuf(batch)
}

// applyLocked applies c to the master and reports whether anything changed.
func (ix *Index[T]) applyLocked(c *change[T]) bool {
	sub := ix.subs[c.s]
	switch c.kind {
	case opAdd:
		if sub != nil && len(sub.filters) >= c.maxFilters {
			c.err = fmt.Errorf("%w: more than %d filters on one connection", ErrLimitExceeded, c.maxFilters)
			return false
		}
		if sub == nil {
			sub = &subscriber[T]{}
			ix.subs[c.s] = sub
		}
		if sub.filters == nil {
			sub.filters = make(map[string]*filterRec[T])
		}
		sub.nextID++
		c.id = strconv.FormatUint(sub.nextID, 10)
		rec := &filterRec[T]{f: c.f, entries: make([]*entry[T], len(c.keys))}
		for i, k := range c.keys {
			e := ix.entryLocked(k)
			ix.incRefLocked(e, c.s)
			rec.entries[i] = e
		}
		sub.filters[c.id] = rec
		ix.filters++
		return true
	case opRemove:
		rec, ok := sub.lookup(c.id)
		if !ok {
			return false
		}
		ix.removeFilterLocked(c.s, sub, c.id, rec)
		c.n = 1
	case opRemoveAll:
		if sub == nil || len(sub.filters) == 0 {
			return false
		}
		c.n = ix.removeAllLocked(c.s, sub)
	case opRemoveSubscriber:
		if sub == nil {
			return false
		}
		c.n = ix.removeAllLocked(c.s, sub)
		if sub.unfiltered {
			ix.setUnfilteredLocked(c.s, sub, false)
		}
	case opSetUnfiltered:
		if (sub != nil && sub.unfiltered) == c.on {
			return false
		}
		if sub == nil {
			sub = &subscriber[T]{}
			ix.subs[c.s] = sub
		}
		ix.setUnfilteredLocked(c.s, sub, c.on)
	}
	if len(sub.filters) == 0 && !sub.unfiltered {
		delete(ix.subs, c.s)
	}
	return true
}

func (ix *Index[T]) publishLocked() {
	for _, e := range ix.dirty {
		before := e.list.Load() != nil
		after := e.publishLocked() > 0
		ix.keys += btoi(after) - btoi(before)
	}
	ix.dirty = resetBuf(ix.dirty)
	ix.publications++
	// Drop dead entries once they dominate the table; every entry is now
	// published, so the live ones are exactly those with recipients.
	if t := ix.tab.Load(); t.used >= 64 && t.used > 4*ix.keys {
		ix.tab.Store(t.rebuiltLocked(ix.keys))
	}
}
