package pool

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// writeCause is why a socket write failed: the client's doing (it reset or
// closed the connection, or stopped reading until the write deadline
// passed) or the server's (anything else: a resource, a descriptor, a bug).
// Health counts only the server's causes (Stats.ServerWriteErrors).
type writeCause int

const (
	writeClientReset writeCause = iota
	writeClientTimeout
	writeServer
)

func classifyWrite(err error) writeCause {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return writeClientTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrClosedPipe), errors.Is(err, net.ErrClosed):
		// net.ErrClosed here means the reader closed the socket after the
		// client's own close or protocol error, under the write.
		return writeClientReset
	}
	return writeServer
}

func (p *Pool) countWriteFailure(err error) {
	switch classifyWrite(err) {
	case writeClientReset:
		p.writeResets.Add(1)
	case writeClientTimeout:
		p.writeTimeouts.Add(1)
	default:
		p.writeServer.Add(1)
	}
}
