package protocluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/quarkgo/quark/internal/backoff"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// ErrLeaseHeld is matched by the activation error of an actor whose
// activation lease another member held for longer than the wait allowed.
var ErrLeaseHeld = errors.New("cluster: activation lease held by another member")

// LeaseConfig turns on strict single activation: before an identity
// activates on a member, the member takes the identity's lease, a record in
// the store written only if absent or expired; it renews it while the
// activation lives and deletes it after the activation's final flush.
type LeaseConfig struct {
	// Provider names the store of the leases; "" is the host's default.
	Provider string
	// TTL is how long a lease lasts without renewal: how long an identity
	// stays unavailable after its member died. Renewals happen every TTL/3.
	TTL time.Duration
	// Wait bounds how long an activation waits for a lease another member
	// holds (0: TTL plus five seconds); then the activation fails with an
	// error matching ErrLeaseHeld.
	Wait time.Duration
}

// LeaseSlot is the slot name of lease records, next to the actor's slots
// in the key (kind, id, slot). User slot names cannot start with '$'.
const LeaseSlot = "$lease"

// validFraction is the part of the TTL during which a member serves an
// identity after taking or renewing its lease, measured from when the write
// began: the rest covers clock differences between members.
const validFraction = 0.8

type leaseRecord struct {
	Member  string `json:"member"`
	Address string `json:"address"`
}

type leases struct {
	m     *Member
	store *persistence.Store
	cfg   LeaseConfig
	once  sync.Once
	data  []byte // this member's record

	mu   sync.Mutex
	held map[*lease]struct{}
}

type lease struct {
	key        persistence.Key
	pid        *actor.PID // the grain, told when the lease is lost
	mu         sync.Mutex // serialises renewal and release
	version    int64
	validUntil atomic.Int64 // monotonic nanoseconds since leases.epoch
	released   bool
}

var leaseEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(leaseEpoch)) }

func newLeases(m *Member, reg *persistence.Providers, cfg *LeaseConfig) (*leases, error) {
	if cfg.TTL <= 0 {
		return nil, fmt.Errorf("cluster: lease TTL must be positive, got %v", cfg.TTL)
	}
	store, err := reg.Lookup(cfg.Provider)
	if err != nil {
		return nil, fmt.Errorf("cluster: lease provider: %w", err)
	}
	c := *cfg
	if c.Wait <= 0 {
		c.Wait = c.TTL + 5*time.Second
	}
	return &leases{m: m, store: store, cfg: c, held: map[*lease]struct{}{}}, nil
}

func (ls *leases) record() driver.Record {
	ls.once.Do(func() {
		ls.data, _ = json.Marshal(leaseRecord{Member: ls.m.sys.ID, Address: ls.m.sys.Address()})
	})
	now := ls.store.Now()
	return driver.Record{Data: ls.data, Codec: "json", UpdatedAt: now, ExpiresAt: now.Add(ls.cfg.TTL)}
}

// acquire takes the lease of (kind, id) for the grain pid, waiting while
// another member holds it.
func (ls *leases) acquire(kind, id string, pid *actor.PID) (*lease, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ls.cfg.Wait)
	defer cancel()
	l := &lease{key: persistence.Key{Kind: kind, ID: id, Slot: LeaseSlot}, pid: pid}
	var holder string
	for attempt := 1; ; attempt++ {
		start := monoNow()
		rec, err := ls.store.Load(ctx, l.key)
		expected := int64(-1)
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			expected = 0
		case err == nil:
			var r leaseRecord
			if json.Unmarshal(rec.Data, &r) == nil && r.Member == ls.m.sys.ID {
				expected = rec.Version // ours, left over from a release that failed
			} else {
				holder = r.Address
			}
		}
		if expected >= 0 {
			v, err := ls.store.Save(ctx, l.key, ls.record(), expected)
			if err == nil {
				l.version = v
				l.validUntil.Store(start + int64(validFraction*float64(ls.cfg.TTL)))
				ls.mu.Lock()
				ls.held[l] = struct{}{}
				ls.mu.Unlock()
				return l, nil
			}
			if !errors.Is(err, persistence.ErrConflict) && ctx.Err() == nil {
				ls.m.log.Warn("taking an activation lease failed; retrying", zap.String("kind", kind), zap.String("id", id), zap.Error(err))
			}
		} else if err != nil && ctx.Err() == nil {
			ls.m.log.Warn("reading an activation lease failed; retrying", zap.String("kind", kind), zap.String("id", id), zap.Error(err))
		}
		d := min(10*time.Millisecond<<min(attempt, 6), ls.cfg.TTL/4)
		if err := backoff.Sleep(ctx, d); err != nil {
			return nil, fmt.Errorf("%w (%s) after %v", ErrLeaseHeld, holder, ls.cfg.Wait)
		}
	}
}

// valid reports whether the member may still serve the identity.
func (l *lease) valid() bool { return monoNow() < l.validUntil.Load() }

// release deletes the lease after the activation's final flush.
func (ls *leases) release(l *lease) {
	ls.mu.Lock()
	delete(ls.held, l)
	ls.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return
	}
	l.released = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ls.store.Delete(ctx, l.key, l.version); err != nil && !errors.Is(err, persistence.ErrConflict) {
		// It expires by itself.
		ls.m.log.Warn("releasing an activation lease failed; it will expire", zap.Any("key", l.key), zap.Error(err))
	}
}

// renewLoop renews every held lease every TTL/3 until the member stops.
func (ls *leases) renewLoop() {
	defer ls.m.bg.Done()
	t := time.NewTicker(ls.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ls.m.quit:
			return
		case <-t.C:
		}
		ls.mu.Lock()
		list := make([]*lease, 0, len(ls.held))
		for l := range ls.held {
			list = append(list, l)
		}
		ls.mu.Unlock()
		for _, l := range list {
			ls.renew(l)
		}
	}
}

func (ls *leases) renew(l *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ls.cfg.TTL/3)
	defer cancel()
	start := monoNow()
	v, err := ls.store.Save(ctx, l.key, ls.record(), l.version)
	switch {
	case err == nil:
		l.version = v
		l.validUntil.Store(start + int64(validFraction*float64(ls.cfg.TTL)))
	case errors.Is(err, persistence.ErrConflict):
		// It expired and another member took it: stop serving now.
		l.validUntil.Store(0)
		ls.m.root.Send(l.pid, leaseLost{})
	default:
		ls.m.log.Warn("renewing an activation lease failed", zap.Any("key", l.key), zap.Error(err))
	}
}

// leaseLost tells a grain that its lease is gone.
type leaseLost struct{}
