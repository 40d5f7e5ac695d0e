package dataflow

import (
	"context"
	"errors"
	"sync/atomic"
)

// ErrClosed is returned by Output after Close.
var ErrClosed = errors.New("dataflow: output channel closed")

// ErrBackpressure is returned by Output when the proxy's dispatcher queue is
// full and the message was dropped (and counted).
var ErrBackpressure = errors.New("dataflow: proxy busy, message dropped")

// OutputChannel is what the collector pipeline writes to. Output validates md
// and hands it to the proxy without blocking on slow clients.
type OutputChannel interface {
	Output(ctx context.Context, md MarketData) error
	Status() ChannelStatus
	Close() error
}

// ChannelStatus describes an OutputChannel for the pipeline's own monitoring.
type ChannelStatus struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Enabled      bool   `json:"enabled"`
	Connected    bool   `json:"connected"`
	MessagesSent uint64 `json:"messagesSent"`
	Errors       uint64 `json:"errors"`
	LastActivity int64  `json:"lastActivity"`
	Health       string `json:"health"`
}

// InProcess is the embedded OutputChannel: a Go collector in the same process
// calls Output directly. It is also a Source, so the proxy reports it with the
// others. Safe for concurrent use.
type InProcess struct {
	id     string
	c      counters
	closed atomic.Bool

	att attachment
}

var (
	_ OutputChannel = (*InProcess)(nil)
	_ Source        = (*InProcess)(nil)
)

// NewInProcess returns an embedded output channel named name. It delivers
// nothing until the proxy has started it with Run.
func NewInProcess(name string) *InProcess {
	ip := &InProcess{id: "inprocess-" + name}
	ip.c.name, ip.c.typ = name, "inprocess"
	return ip
}

// Name implements Source.
func (ip *InProcess) Name() string { return ip.c.name }

// Run attaches the channel to sink until ctx ends.
func (ip *InProcess) Run(ctx context.Context, sink Sink) error {
	ip.att.run(ctx, &ip.c, sink)
	return nil
}

// Output validates md and forwards it. Invalid messages are rejected with an
// error wrapping ErrInvalid and counted.
func (ip *InProcess) Output(ctx context.Context, md MarketData) error {
	if ip.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := md.Validate(); err != nil {
		ip.c.rejected.Add(1)
		return err
	}
	sink := ip.att.get()
	if sink == nil {
		ip.c.rejected.Add(1)
		return ErrClosed
	}
	before := ip.c.dropped.Load()
	m := md
	ip.c.deliver(sink, &m)
	if ip.c.dropped.Load() != before {
		return ErrBackpressure
	}
	return nil
}

// Status implements OutputChannel.
func (ip *InProcess) Status() ChannelStatus {
	s := ip.c.status()
	health := "healthy"
	if !s.Connected {
		health = "unhealthy"
	}
	return ChannelStatus{
		ID: ip.id, Name: s.Name, Type: s.Type,
		Enabled:      !ip.closed.Load(),
		Connected:    s.Connected,
		MessagesSent: s.Received - s.Dropped,
		Errors:       s.Rejected + s.Dropped,
		LastActivity: s.LastActivity,
		Health:       health,
	}
}

// Stats implements Source.
func (ip *InProcess) Stats() SourceStatus { return ip.c.status() }

// Close stops accepting messages. It is idempotent.
func (ip *InProcess) Close() error {
	ip.closed.Store(true)
	return nil
}
