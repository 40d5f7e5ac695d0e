package subscription

// maxKeys is the number of keys a message can match: exchange ∈ {e, *} ×
// dataType ∈ {t, *} × symbol ∈ {s, *}.
const maxKeys = 8

// Matches is the result of Index.Match: the recipient lists of up to eight
// matching keys, each split into lists of at most 256 entries. It is returned
// by value and refers to immutable snapshots shared with the index and with
// every other Match of the same keys, so using it allocates nothing: read the
// lists, retain them, hand them to other goroutines, but never modify them.
//
// A subscriber appears at most once per key, but may appear under several
// keys when several of its filters (or its unfiltered mark) match.
type Matches[T comparable] struct {
	lists [maxKeys]*recipients[T]
	n     int
}

// Len returns the number of entries, duplicates included.
func (m *Matches[T]) Len() int {
	n := 0
	for _, r := range m.lists[:m.n] {
		n += r.n
	}
	return n
}

// ForEach calls fn for each entry, duplicates included.
func (m *Matches[T]) ForEach(fn func(T)) {
	for _, r := range m.lists[:m.n] {
		for _, c := range r.full {
			for _, s := range c {
				fn(s)
			}
		}
		for _, s := range r.tail {
			fn(s)
		}
	}
}

// NumLists returns the number of non-empty lists, for splitting a fan-out:
// one per 256 recipients of a key, and at least one per matching key.
func (m *Matches[T]) NumLists() int {
	n := 0
	for _, r := range m.lists[:m.n] {
		n += len(r.full)
		if len(r.tail) > 0 {
			n++
		}
	}
	return n
}

// List returns list i, 0 <= i < NumLists(): never empty, at most 256 long.
// It panics if i is out of range.
func (m *Matches[T]) List(i int) []T {
	for _, r := range m.lists[:m.n] {
		if i < len(r.full) {
			return r.full[i]
		}
		i -= len(r.full)
		if len(r.tail) > 0 {
			if i == 0 {
				return r.tail
			}
			i--
		}
	}
	panic("subscription: Matches.List index out of range")
}

// AppendLists appends every list to dst and returns the extended slice; with
// a dst of enough capacity, reused from message to message, it does not
// allocate.
func (m *Matches[T]) AppendLists(dst [][]T) [][]T {
	for _, r := range m.lists[:m.n] {
		dst = append(dst, r.full...)
		if len(r.tail) > 0 {
			dst = append(dst, r.tail)
		}
	}
	return dst
}

// Chunks calls fn with consecutive pieces of the lists, each of at most size
// entries (size <= 0 means whole lists), so that a large fan-out can be split
// across workers without allocating. The pieces are immutable and may be
// retained by fn.
func (m *Matches[T]) Chunks(size int, fn func([]T)) {
	emit := func(l []T) {
		if size <= 0 {
			fn(l)
			return
		}
		for len(l) > size {
			fn(l[:size:size])
			l = l[size:]
		}
		fn(l)
	}
	for _, r := range m.lists[:m.n] {
		for _, c := range r.full {
			emit(c)
		}
		if len(r.tail) > 0 {
			emit(r.tail)
		}
	}
}
