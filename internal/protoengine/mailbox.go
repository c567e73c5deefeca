package protoengine

import (
	goruntime "runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// batchMailbox is an actor.Mailbox whose consumer takes the lock once per
// batch instead of once per message. protoactor's default mailbox pops each
// message from a mutex-guarded ring, so a busy sender and the actor spin on
// the same lock for every message; here the sender appends under the lock
// and the actor swaps the whole pending slice out.
//
// It keeps the default mailbox's semantics: system messages go before user
// messages (a system message posted in the middle of a batch is handled
// before the rest of the batch), SuspendMailbox/ResumeMailbox pause user
// messages, the actor yields every Throughput messages, and a panic escalates
// to the supervisor with the unprocessed messages kept in order.
//
// Fields are laid out by who writes them: the lock and queues (written by
// every post) sit apart from the flags the actor reads on every message,
// which change rarely, so that the two goroutines do not bounce one cache
// line back and forth per message.
type batchMailbox struct {
	mu    sync.Mutex // guards user, sys and spare
	user  []any
	sys   []any
	spare []any
	_     [64]byte

	nsys   atomic.Int32 // system messages posted, not yet taken
	status atomic.Int32 // mailboxIdle or mailboxRunning
	_      [64]byte

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher

	// Touched only by the goroutine running the mailbox.
	suspended bool
	batch     []any
	next      int // index in batch of the next message to handle
}

const (
	mailboxIdle int32 = iota
	mailboxRunning
)

func newBatchMailbox() actor.Mailbox { return &batchMailbox{} }

func (m *batchMailbox) PostUserMessage(msg any) {
	m.mu.Lock()
	m.user = append(m.user, msg)
	m.mu.Unlock()
	m.schedule()
}

func (m *batchMailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.sys = append(m.sys, msg)
	m.mu.Unlock()
	m.nsys.Add(1)
	m.schedule()
}

func (m *batchMailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
}

func (m *batchMailbox) Start() {}

// UserMessageCount returns the number of user messages not yet taken by
// the actor (messages of the batch in progress are not counted).
func (m *batchMailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.user)
}

// schedule starts a run unless one is going. The load before the CAS keeps
// the common case (a run is going) a read of a line that rarely changes.
func (m *batchMailbox) schedule() {
	if m.status.Load() == mailboxIdle && m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
		m.dispatcher.Schedule(m.process)
	}
}

func (m *batchMailbox) process() {
	for {
		m.run()
		// Read what only the running goroutine owns before going idle: once
		// idle, a poster may start a new run on another goroutine, which then
		// owns suspended, batch and next.
		suspended := m.suspended
		m.status.Store(mailboxIdle)
		// A post that found the mailbox running before the store above has
		// its message queued; pick it up rather than leave it stranded. (A
		// batch left unfinished by a suspension resumes with the
		// ResumeMailbox system message, which schedules a run.)
		if m.nsys.Load() == 0 && (suspended || !m.hasUser()) {
			return
		}
		if !m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
			return // another poster scheduled a run
		}
	}
}

func (m *batchMailbox) run() {
	var current any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, current)
		}
	}()
	throughput, handled := m.dispatcher.Throughput(), 0
	for {
		if m.nsys.Load() > 0 {
			for _, msg := range m.takeSystem() {
				current = msg
				switch msg.(type) {
				case *actor.SuspendMailbox:
					m.suspended = true
				case *actor.ResumeMailbox:
					m.suspended = false
				default:
					m.invoker.InvokeSystemMessage(msg)
				}
			}
			continue
		}
		if m.suspended {
			return
		}
		if m.next >= len(m.batch) && !m.takeUser() {
			return
		}
		for m.next < len(m.batch) {
			if m.nsys.Load() > 0 {
				break // system messages first: the rest of the batch waits
			}
			if handled++; handled > throughput {
				handled = 0
				goruntime.Gosched()
			}
			current = m.batch[m.next]
			m.batch[m.next] = nil
			m.next++
			m.invoker.InvokeUserMessage(current)
		}
	}
}

// takeSystem removes and returns every pending system message.
func (m *batchMailbox) takeSystem() []any {
	m.mu.Lock()
	out := m.sys
	m.sys = nil
	m.mu.Unlock()
	m.nsys.Add(-int32(len(out)))
	return out
}

// hasUser reports whether user messages are queued. It reads only the
// shared queue, so it is safe to call after the mailbox went idle.
func (m *batchMailbox) hasUser() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.user) > 0
}

// takeUser makes the pending user messages the current batch, recycling the
// previous batch's buffer. It reports whether there were any.
func (m *batchMailbox) takeUser() bool {
	done := m.batch[:0]
	m.mu.Lock()
	if len(m.user) == 0 {
		m.mu.Unlock()
		return false
	}
	m.batch, m.user = m.user, m.spare
	m.spare = done
	m.mu.Unlock()
	m.next = 0
	return true
}
