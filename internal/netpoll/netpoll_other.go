//go:build !linux

package netpoll

import "net"

type poller struct{}

// Register returns ErrUnsupported: sockets are parked only on Linux.
func Register(net.Conn, func()) (*Handle, error) { return nil, ErrUnsupported }

// Ready reports true: nothing is parked here.
func (h *Handle) Ready() bool { return true }

func (p *poller) arm(*Handle) error { return ErrUnsupported }

func (p *poller) remove(*Handle) {}
