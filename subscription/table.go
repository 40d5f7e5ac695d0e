package subscription

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// wildcard is the key component of an empty filter field. NewFilter rejects
// empty values, so it cannot collide with a real exchange, type or symbol.
const wildcard = ""

// key identifies one index bucket.
type key struct {
	exchange, dataType, symbol string
}

// member is the master state of one subscriber in one bucket.
type member struct {
	refs int32 // filters (and the unfiltered mark) of the subscriber on this key
	pos  int32 // position in the bucket's list
}

// chunkSize bounds the length of one recipient chunk: what a removal copies,
// and the unit Matches hands out for parallel fan-out. A variable so that
// tests can exercise chunk boundaries with few subscribers.
var chunkSize = 256

// recipients is one published, immutable recipient list: full chunks of
// exactly chunkSize entries, then a shorter tail.
type recipients[T comparable] struct {
	full [][]T
	tail []T
	n    int
}

// entry is one bucket: the recipients of one key. Readers only read key and
// list; every other field is guarded by Index.mu.
//
// The writer edits its working copy of the list in place, under one rule:
// an element (or chunk header) that readers may have seen is never written
// again. fullFrozen and tailFrozen are the lengths published so far of the
// current header and tail arrays; owned marks chunks copied since the last
// publication. Writing below a frozen length, or into a chunk not owned,
// copies that one array first. An append therefore costs O(1) amortised, and
// a removal (swap with the last element) copies at most one chunk and the
// chunk headers, whatever the bucket size.
type entry[T comparable] struct {
	key
	list atomic.Pointer[recipients[T]] // nil when none

	members    map[T]member
	full       [][]T
	owned      []bool // parallel to full
	anyOwned   bool
	tail       []T
	fullFrozen int
	tailFrozen int
	n          int
	dirty      bool // queued in Index.dirty
}

// incRefLocked adds one reference of s to e and reports whether the set of
// recipients changed.
func (e *entry[T]) incRefLocked(s T) bool {
	if m, ok := e.members[s]; ok {
		m.refs++
		e.members[s] = m
		return false
	}
	if e.members == nil {
		e.members = make(map[T]member)
	}
	e.members[s] = member{refs: 1, pos: int32(e.n)}
	e.push(s)
	return true
}

// decRefLocked drops one reference of s, which must hold one, and reports
// whether the set of recipients changed.
func (e *entry[T]) decRefLocked(s T) bool {
	m := e.members[s]
	if m.refs > 1 {
		m.refs--
		e.members[s] = m
		return false
	}
	delete(e.members, s)
	e.removeAt(int(m.pos))
	return true
}

// push appends s to the working list.
func (e *entry[T]) push(s T) {
	if len(e.tail) == chunkSize {
		e.pushChunk(e.tail, e.tailFrozen == 0)
		e.tail, e.tailFrozen = nil, 0
	}
	if i := len(e.tail); i < e.tailFrozen || i == cap(e.tail) {
		c := cap(e.tail)
		if i == c {
			c = min(max(2*c, 4), chunkSize)
		}
		e.tail = copyInto(make([]T, i, c), e.tail)
		e.tailFrozen = 0
	}
	e.tail = append(e.tail, s)
	e.n++
}

func (e *entry[T]) pushChunk(c []T, owned bool) {
	if k := len(e.full); k < e.fullFrozen || k == cap(e.full) {
		e.full = copyInto(make([][]T, k, max(2*cap(e.full), 4)), e.full)
		e.fullFrozen = 0
	}
	e.full = append(e.full, c)
	e.owned = append(e.owned, owned)
	e.anyOwned = e.anyOwned || owned
}

// removeAt removes the element at position p by moving the last element
// there.
func (e *entry[T]) removeAt(p int) {
	if len(e.tail) == 0 { // the last full chunk becomes the tail
		k := len(e.full) - 1
		e.tail = e.full[k]
		e.tailFrozen = chunkSize
		if e.owned[k] {
			e.tailFrozen = 0
		}
		e.full, e.owned = e.full[:k], e.owned[:k]
	}
	last := len(e.tail) - 1
	moved := e.tail[last]
	e.tail = e.tail[:last]
	if last >= e.tailFrozen { // nobody can see the vacated slot: let it go
		var zero T
		e.tail[:last+1][last] = zero
	}
	e.n--
	if p == e.n {
		return
	}
	e.set(p, moved)
	m := e.members[moved]
	m.pos = int32(p)
	e.members[moved] = m
}

// set writes v at position p, copying whatever readers may see.
func (e *entry[T]) set(p int, v T) {
	ci, j := p/chunkSize, p%chunkSize
	if ci == len(e.full) {
		if j < e.tailFrozen {
			e.tail = copyInto(make([]T, len(e.tail), cap(e.tail)), e.tail)
			e.tailFrozen = 0
		}
		e.tail[j] = v
		return
	}
	if !e.owned[ci] {
		if ci < e.fullFrozen {
			e.full = copyInto(make([][]T, len(e.full), cap(e.full)), e.full)
			e.fullFrozen = 0
		}
		e.full[ci] = copyInto(make([]T, chunkSize), e.full[ci])
		e.owned[ci], e.anyOwned = true, true
	}
	e.full[ci][j] = v
}

func copyInto[E any](dst, src []E) []E {
	copy(dst, src)
	return dst
}

// publishLocked makes the working list visible to readers and returns its
// length. Readers of the previous list keep reading it unchanged.
func (e *entry[T]) publishLocked() int {
	e.dirty = false
	if e.n == 0 {
		e.list.Store(nil)
		e.members, e.full, e.owned, e.tail = nil, nil, nil, nil
		e.anyOwned, e.fullFrozen, e.tailFrozen = false, 0, 0
		return 0
	}
	k, t := len(e.full), len(e.tail)
	e.list.Store(&recipients[T]{full: e.full[:k:k], tail: e.tail[:t:t], n: e.n})
	e.fullFrozen = max(e.fullFrozen, k)
	e.tailFrozen = max(e.tailFrozen, t)
	if e.anyOwned {
		clear(e.owned)
		e.anyOwned = false
	}
	return e.n
}

// resetBuf empties a buffer, keeping small ones for reuse.
func resetBuf[T any](b []T) []T {
	if cap(b) > 64 {
		return nil
	}
	clear(b)
	return b[:0]
}

// slot is one cell of the open-addressing table. hash is stored before e, and
// neither changes once e is set, so a reader that sees e sees its hash.
type slot[T comparable] struct {
	hash atomic.Uint64
	e    atomic.Pointer[entry[T]]
}

// table is an insert-only hash table with linear probing, read without locks
// and written by one writer at a time (under Index.mu). Entries are never
// removed from a table: the writer drops dead ones by building a new table
// and publishing it through Index.tab. The load factor stays at or below 1/2,
// so every probe sequence ends at an empty slot.
type table[T comparable] struct {
	seed  maphash.Seed
	wild  uint64 // hash of the wildcard component
	mask  uint64
	slots []slot[T]
	used  int // occupied slots; writer only
}

func newTable[T comparable](seed maphash.Seed, size int) *table[T] {
	return &table[T]{
		seed:  seed,
		wild:  maphash.String(seed, wildcard),
		mask:  uint64(size - 1),
		slots: make([]slot[T], size),
	}
}

func (t *table[T]) hashString(s string) uint64 {
	if s == wildcard {
		return t.wild
	}
	return maphash.String(t.seed, s)
}

// combine mixes the hashes of a key's three components.
func combine(he, ht, hs uint64) uint64 {
	h := he ^ bits.RotateLeft64(ht*0x9e3779b97f4a7c15, 23) ^ bits.RotateLeft64(hs*0xc2b2ae3d27d4eb4f, 47)
	h ^= h >> 32
	h *= 0xd6e8feb86659fd93
	h ^= h >> 32
	return h
}

func (t *table[T]) hashKey(k key) uint64 {
	return combine(t.hashString(k.exchange), t.hashString(k.dataType), t.hashString(k.symbol))
}

// find returns the entry of key (e, d, s) with hash h, or nil.
func (t *table[T]) find(h uint64, e, d, s string) *entry[T] {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		sl := &t.slots[i]
		en := sl.e.Load()
		if en == nil {
			return nil
		}
		if sl.hash.Load() == h && en.symbol == s && en.exchange == e && en.dataType == d {
			return en
		}
	}
}

// insertLocked stores en, known to be absent, under hash h. The caller makes
// sure the table has room.
func (t *table[T]) insertLocked(h uint64, en *entry[T]) {
	i := h & t.mask
	for t.slots[i].e.Load() != nil {
		i = (i + 1) & t.mask
	}
	t.slots[i].hash.Store(h)
	t.slots[i].e.Store(en)
	t.used++
}

// rebuiltLocked returns a new table holding the live entries of t (those
// with members or with unpublished changes), sized for at least n entries at
// a load factor of at most 1/4, so that it can double before growing again.
func (t *table[T]) rebuiltLocked(n int) *table[T] {
	live := 0
	for i := range t.slots {
		if en := t.slots[i].e.Load(); en != nil && en.alive() {
			live++
		}
	}
	size := 16
	for size < 4*max(n, live) {
		size *= 2
	}
	nt := newTable[T](t.seed, size)
	for i := range t.slots {
		if en := t.slots[i].e.Load(); en != nil && en.alive() {
			nt.insertLocked(t.slots[i].hash.Load(), en)
		}
	}
	return nt
}

func (e *entry[T]) alive() bool { return len(e.members) > 0 || e.dirty }
