package protocluster

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// StartHook is the slog handler of a member's actor system (pass
// slog.New(hook) to the engine). It discards protoactor's log records, but
// one of them marks a point inside protoactor's remote start: after the
// remote has set gRPC's process-wide logger (grpclog.SetLoggerV2, a plain
// write to a global) and before its gRPC server serves. Members started
// together on a Network wait there for each other, so that every member's
// write happens before any member's gRPC activity reads the logger: with
// several members in one process that is otherwise a data race, which -race
// reports (see docs/cluster.md).
type StartHook struct {
	gate atomic.Pointer[StartGate]
}

// NewStartHook returns a hook with no gate.
func NewStartHook() *StartHook { return &StartHook{} }

// remoteStarting is the message protoactor's remote logs between setting
// gRPC's logger and starting its gRPC server (remote/server.go).
const remoteStarting = "Starting remote with address"

// Enabled implements slog.Handler: only Info records can be the marker.
func (h *StartHook) Enabled(_ context.Context, l slog.Level) bool {
	return l == slog.LevelInfo && h.gate.Load() != nil
}

// Handle implements slog.Handler.
func (h *StartHook) Handle(_ context.Context, r slog.Record) error {
	if r.Message == remoteStarting {
		if g := h.gate.Swap(nil); g != nil {
			g.arrive()
		}
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (h *StartHook) WithAttrs([]slog.Attr) slog.Handler { return h }

// WithGroup implements slog.Handler.
func (h *StartHook) WithGroup(string) slog.Handler { return h }

// StartGate lets n members pass the hook's point only together. Their
// starts must also reach it one at a time (start the next member after
// Arrived), so that their writes to gRPC's logger are ordered too.
type StartGate struct {
	mu      sync.Mutex
	n       int
	all     chan struct{}
	arrived chan struct{}
	timeout time.Duration
}

// NewStartGate returns a gate for n members; a member waits at most timeout
// for the others (a member whose start failed never arrives).
func NewStartGate(n int, timeout time.Duration) *StartGate {
	return &StartGate{n: n, all: make(chan struct{}), arrived: make(chan struct{}, n), timeout: timeout}
}

// Arrived receives a value each time a member reaches the gate.
func (g *StartGate) Arrived() <-chan struct{} { return g.arrived }

// Attach makes the member with hook h wait at g when it starts.
func (g *StartGate) Attach(h *StartHook) { h.gate.Store(g) }

func (g *StartGate) arrive() {
	g.arrived <- struct{}{}
	g.mu.Lock()
	g.n--
	if g.n == 0 {
		close(g.all)
	}
	g.mu.Unlock()
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	select {
	case <-g.all:
	case <-t.C:
	}
}

// Cancel releases the members waiting at g (one of them failed to start).
func (g *StartGate) Cancel() {
	g.mu.Lock()
	if g.n > 0 {
		g.n = 0
		close(g.all)
	}
	g.mu.Unlock()
}
