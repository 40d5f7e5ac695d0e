package pool

// ring is a bounded FIFO of frames. Not safe for concurrent use: Conn guards
// it with its mutex.
type ring struct {
	buf  []*Frame
	head int
	n    int
}

func (r *ring) len() int { return r.n }

func (r *ring) at(i int) *Frame { return r.buf[(r.head+i)%len(r.buf)] }

func (r *ring) push(f *Frame, capHint int) {
	if r.n == len(r.buf) {
		r.grow(capHint)
	}
	r.buf[(r.head+r.n)%len(r.buf)] = f
	r.n++
}

func (r *ring) grow(capHint int) {
	size := len(r.buf) * 2
	if size < capHint {
		size = capHint
	}
	if size < 4 {
		size = 4
	}
	nb := make([]*Frame, size)
	for i := 0; i < r.n; i++ {
		nb[i] = r.at(i)
	}
	r.buf, r.head = nb, 0
}

func (r *ring) pop() *Frame {
	f := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return f
}

// removeAt deletes the i-th frame, shifting later frames forward.
func (r *ring) removeAt(i int) *Frame {
	f := r.at(i)
	for j := i; j < r.n-1; j++ {
		r.buf[(r.head+j)%len(r.buf)] = r.at(j + 1)
	}
	r.buf[(r.head+r.n-1)%len(r.buf)] = nil
	r.n--
	return f
}

func (r *ring) clear() {
	for r.n > 0 {
		r.pop()
	}
	r.buf, r.head = nil, 0
}

// ringKeep is the ring size kept by a drained queue; a larger ring, grown by
// a burst, is released, so that an idle connection holds no more than it did
// before the burst.
const ringKeep = 8

// shrink releases a ring grown past ringKeep once it is empty.
func (r *ring) shrink() {
	if r.n == 0 && len(r.buf) > ringKeep {
		r.buf, r.head = nil, 0
	}
}

// capacity returns the frames the ring holds without growing.
func (r *ring) capacity() int { return len(r.buf) }
