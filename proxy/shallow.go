package proxy

// A connection's read goroutine lives as long as the connection and spends
// nearly all of it parked in a socket read. Go keeps a goroutine's stack at
// the largest size it grew to until a garbage collection finds it mostly
// unused, and the runtime starts new goroutines at the average size it
// scanned: a read goroutine that handled a subscribe (JSON decoding, the
// subscription index, the snapshot) itself kept an 8 KiB stack for good, and
// so did every connection after it. So the read goroutine does nothing but
// read frames (readLoop); whatever a frame asks for runs on a short-lived
// goroutine (shallow) while the reader waits, and that goroutine's grown
// stack goes back to the runtime when it returns. Order is unchanged: one
// frame is handled at a time, before the next is read, and only one
// goroutine touches the session at any moment.

// shallow runs f on a goroutine of its own and waits for it to return.
func shallow(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// readLoop is the connection's reader: it reads client frames until the
// connection ends, and holds no message buffer between frames. With a
// parked reader (park.go) it returns whenever nothing is left to read, and
// runs again on a new goroutine when the socket becomes readable: it is
// short-lived itself, so messages are handled on it directly. Otherwise it
// is the connection's one read goroutine and hands every message to a
// short-lived one.
func (ss *session) readLoop() { ss.serve(false) }

// resume is readLoop after a wake-up (netpoll): the socket is readable, so
// the first read goes ahead without a look first.
func (ss *session) resume() { ss.serve(true) }

func (ss *session) serve(woken bool) {
	fr := ss.fr
	if ss.park != nil {
		// A parked connection keeps no reader (nothing is buffered when
		// it parks): each wake-up takes one from readers.
		if fr == nil {
			fr = ss.newReader()
		} else {
			ss.fr = nil
		}
	}
	// At the start, nothing may have arrived yet: look before reading.
	// After a message, park without a look: the socket is armed
	// level-triggered, so what arrived meanwhile wakes a reader at once.
	look := !woken
	for {
		if ss.park != nil && len(fr.Pre) == 0 && !woken && !ss.park.Stopped() && (!look || !ss.park.Ready()) {
			// Given back first: once parked, a wake-up may run serve
			// on another goroutine at once. A connection that cannot
			// park (stopped) takes one again.
			releaseReader(fr)
			if ss.park.Park() {
				return
			}
			fr = ss.newReader()
		}
		woken, look = false, false
		mt, msg, err := fr.ReadMessage()
		if err != nil {
			ss.readEnded(fr.Conn, err)
			ss.end()
			return
		}
		if mt == 0 {
			continue // a ping or pong, handled (wsframe.Reader.ControlReturns)
		}
		if ss.park != nil {
			ss.onMessage(mt, msg)
		} else {
			shallow(func() { ss.onMessage(mt, msg) })
		}
		fr.Release()
	}
}
