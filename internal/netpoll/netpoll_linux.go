//go:build linux

package netpoll

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// poller is the process-wide epoll set and its one waiting goroutine,
// started with the first Register.
type poller struct {
	epfd    int
	mu      sync.Mutex
	handles map[int32]*Handle
}

var (
	once    sync.Once
	shared  *poller
	initErr error
)

func start() (*poller, error) {
	once.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			initErr = err
			return
		}
		shared = &poller{epfd: fd, handles: make(map[int32]*Handle)}
		go shared.run()
	})
	return shared, initErr
}

// Register makes c parkable; wake is what Park's caller would have gone on
// doing (read the socket), run on a new goroutine after each wake-up. Only
// a *net.TCPConn can be parked: anything else (TLS, whose buffered records
// epoll cannot see) returns ErrUnsupported.
func Register(c net.Conn, wake func()) (*Handle, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, ErrUnsupported
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	p, err := start()
	if err != nil {
		return nil, err
	}
	h := &Handle{p: p, fd: -1, ctl: rc.Control, wake: wake}
	if err := rc.Control(func(fd uintptr) {
		h.fd = int32(fd)
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd),
			&syscall.EpollEvent{Events: 0, Fd: int32(fd)})
	}); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.handles[h.fd] = h
	p.mu.Unlock()
	return h, nil
}

// Ready reports whether a read would not block: data or end of stream is
// waiting, or the socket failed or was closed. It reads nothing.
func (h *Handle) Ready() bool {
	ready := true
	_ = h.ctl(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ready = err != syscall.EAGAIN
	})
	return ready
}

const armEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// arm re-enables the socket's one-shot entry. Level-triggered: a socket
// that became readable before arming reports at once.
func (p *poller) arm(h *Handle) error {
	var err error
	if cerr := h.ctl(func(fd uintptr) {
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd),
			&syscall.EpollEvent{Events: armEvents, Fd: int32(fd)})
	}); cerr != nil {
		return cerr
	}
	return err
}

func (p *poller) remove(h *Handle) {
	// A closed socket left the epoll set with its last descriptor; its
	// number may already belong to another connection, so the table entry
	// is only dropped if it is still this handle's.
	_ = h.ctl(func(fd uintptr) {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	p.mu.Lock()
	if p.handles[h.fd] == h {
		delete(p.handles, h.fd)
	}
	p.mu.Unlock()
}

func (p *poller) run() {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			panic("netpoll: epoll_wait: " + err.Error())
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			// A stale event (the socket was closed and its number
			// reused) at worst wakes a reader that finds nothing and
			// parks again.
			if h := p.handles[ev.Fd]; h != nil {
				h.resume()
			}
		}
		p.mu.Unlock()
	}
}
