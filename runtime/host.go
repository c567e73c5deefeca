package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/catalog"
	"github.com/quarkgo/quark/internal/protocluster"
	"github.com/quarkgo/quark/internal/protoengine"
	"github.com/quarkgo/quark/persistence"
	_ "github.com/quarkgo/quark/providers/embedded" // embedded: URLs for WithStoreURL
	_ "github.com/quarkgo/quark/providers/memory"   // memory: URLs for WithStoreURL
)

// Host runs virtual actors on one machine. It is the composition root: it
// wires the protoactor engine, the activation catalog, the named providers,
// logging and, when configured, metrics and tracing. Create it with New,
// register kinds, Start it, and Shutdown it when done.
type Host struct {
	cfg    Config
	reg    *persistence.Providers
	engine *protoengine.Engine
	cat    *catalog.Catalog
	stop   sync.Once // stops the engine

	member  *protocluster.Member // nil unless cluster mode
	started atomic.Bool
	owned   map[string]*persistence.Store // opened from URLs: closed with the engine
}

// New builds a host from DefaultConfig changed by opts, and opens the
// stores named by WithStoreURL (it fails, closing what it opened, if one
// cannot be opened).
func New(opts ...Option) (*Host, error) {
	cfg := DefaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tel, err := newTelemetry(cfg.MeterProvider, cfg.TracerProvider)
	if err != nil {
		return nil, err
	}
	owned, err := openURLs(cfg.StoreURLs)
	if err != nil {
		return nil, err
	}
	h, err := newHost(cfg, tel, owned)
	if err != nil {
		closeAll(owned)
		return nil, err
	}
	return h, nil
}

// openURLs opens the stores named by URL, or none.
func openURLs(urls map[string]string) (map[string]*persistence.Store, error) {
	owned := make(map[string]*persistence.Store, len(urls))
	for name, u := range urls {
		s, err := persistence.OpenStore(context.Background(), u)
		if err != nil {
			closeAll(owned)
			return nil, fmt.Errorf("runtime: provider %q: %w", name, err)
		}
		owned[name] = s
	}
	return owned, nil
}

func closeAll(stores map[string]*persistence.Store) error {
	var errs []error
	for name, s := range stores {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("runtime: closing provider %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func newHost(cfg Config, tel *telemetry, owned map[string]*persistence.Store) (*Host, error) {
	stores := make(map[string]*persistence.Store, len(cfg.Providers)+len(owned))
	maps.Copy(stores, cfg.Providers)
	maps.Copy(stores, owned)
	if tel != nil {
		stores = tel.instrument(stores)
	}
	reg, err := persistence.NewProviders(stores, cfg.DefaultProvider)
	if err != nil {
		return nil, err
	}
	var hook *protocluster.StartHook
	var protoLog *slog.Logger
	if cfg.Cluster != nil {
		hook = protocluster.NewStartHook()
		protoLog = slog.New(hook)
	}
	engine := protoengine.New(protoLog)
	acfg := catalog.Config{
		Engine: engine, Providers: reg, Logger: cfg.Logger, Clock: cfg.Clock,
		IdleSweep: cfg.IdleSweep, ActivateTimeout: cfg.ActivateTimeout,
		DeactivateTimeout: cfg.DeactivateTimeout, RequestTimeout: cfg.RequestTimeout,
	}
	var member *protocluster.Member
	if cfg.Cluster != nil {
		if member, err = newMember(&cfg, engine, hook); err != nil {
			engine.Shutdown()
			return nil, err
		}
		acfg.Router = member
	}
	cat, err := catalog.NewCatalog(acfg)
	if err != nil {
		engine.Shutdown()
		return nil, err
	}
	if member != nil {
		member.Bind(cat)
	}
	if tel != nil && tel.metrics {
		cat.Subscribe(tel.onEvent) // for the host's lifetime: shutdown events count too
	}
	return &Host{cfg: cfg, reg: reg, engine: engine, cat: cat, member: member, owned: owned}, nil
}

// Register adds an actor kind: factory builds the actor of one activation
// and declares its slots (persistence.Declare).
//
// Register does not call factory; it runs at the start of every activation,
// exactly once each. What can be checked without running it is checked
// now: the kind's name and, by reflection on A, the state type T of every
// *persistence.Slot[T] field of the actor's struct, with the default codec
// (see persistence.CheckSlotFields): a state type JSON would silently lose
// part of fails here, naming the field. What only the factory knows, the
// provider and the codec each slot names, is checked when it runs: an
// unknown provider fails the kind's first activation (and every later one)
// with an *activation.Error naming the slot and the provider,
// logged once per kind.
//
// In cluster mode, kinds are registered before Start (protoactor fixes a
// member's kinds when it joins), and a client registers none.
func Register[A activation.Actor](h *Host, kind string, factory func(*activation.Context) A, opts ...activation.KindOption) error {
	if err := persistence.CheckSlotFields(reflect.TypeFor[A]()); err != nil {
		return fmt.Errorf("runtime: registering kind %q: %w", kind, err)
	}
	if h.member != nil {
		if err := h.clusterRegister(kind); err != nil {
			return err
		}
	}
	return catalog.Register(h.cat, kind, factory, opts...)
}

// Start lets messages in.
func (h *Host) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.cat.Start()
	if h.member != nil && !h.started.Swap(true) {
		return h.member.Start(ctx, h.reg)
	}
	return nil
}

// Ref returns a reference to the actor (kind, id); see activation.Ref.
func (h *Host) Ref(kind, id string) activation.Ref { return h.cat.Ref(kind, id) }

// Deactivate ends the activation of (kind, id), if any, and waits for its
// flush.
func (h *Host) Deactivate(ctx context.Context, kind, id string) error {
	return h.cat.Deactivate(ctx, kind, id)
}

// Subscribe calls fn for every lifecycle event; see activation.Event.
func (h *Host) Subscribe(fn func(activation.Event)) (unsubscribe func()) {
	return h.cat.Subscribe(fn)
}

// Activations returns the number of live activations.
func (h *Host) Activations() int { return h.cat.Len() }

// Providers returns the host's named providers: those given with
// WithProvider and those opened from WithStoreURL. When a meter or tracer
// provider is configured, its stores are instrumented copies of the ones
// registered (see persistence.Instrument): they share the provider, and
// closing either closes it.
func (h *Host) Providers() *persistence.Providers { return h.reg }

// Shutdown refuses new messages, deactivates every actor (OnDeactivate, then
// the flush of dirty slots) and waits for them, then stops the engine and
// closes the stores the host opened from URLs (WithStoreURL). Stores given
// with WithProvider stay open: they are the caller's, to close afterwards.
//
// ctx bounds the whole shutdown, flush retries included (each deactivation
// is also bounded by the deactivation timeout). When ctx ends, the flushes
// still in progress are canceled and no flush starts any more; Shutdown
// waits for the canceled store calls to return (at most a second), so that
// nothing it leaves behind can still write, and returns. It returns nil if
// every dirty slot was saved, and otherwise an *activation.ShutdownError
// naming each slot not confirmed saved: not saved, outcome unknown (a write
// was in flight, or failed in a way that does not show whether it was
// applied), or still running (a handler or OnDeactivate had not returned;
// the engine and the stores opened from URLs are then left running, and a
// later call of Shutdown stops them).
//
// A cluster member deactivates its actors while it redirects what else
// reaches it (telling senders that it is leaving, so that they route to the
// new owners), waits until messages stop arriving, then leaves protoactor's
// cluster, all within ctx.
func (h *Host) Shutdown(ctx context.Context) error {
	if h.member != nil {
		h.member.PrepareLeave()
	}
	err := h.cat.Shutdown(ctx)
	var serr *activation.ShutdownError
	if err == nil || errors.As(err, &serr) && serr.Pending == 0 {
		if h.member != nil {
			err = errors.Join(err, h.member.Stop(ctx))
		}
		h.stop.Do(func() {
			h.engine.Shutdown()
			err = errors.Join(err, closeAll(h.owned))
		})
	}
	return err
}

// Ask delivers msg to the actor ref addresses, activating it if needed, and
// waits for the handler's reply, converted to T, until ctx ends (or the
// host's request timeout, if ctx has no deadline). Inside a handler, pass
// the handler's *activation.Context as ctx; an actor asking itself gets an
// error rather than a deadlock.
//
// The handler's error is returned as it is, together with the value the
// handler returned alongside it, if that value is a T. A reply that is not
// a T (other than nil, which gives T's zero value) returns
// activation.ErrUnexpectedReply. An activation that failed returns an
// *activation.Error, a handler panic an *activation.PanicError. In
// cluster mode a message that could not be delivered because the actor was
// moving between members is delivered again once the actor is reachable,
// until ctx ends; a delivered message is never sent twice.
func Ask[T any](ctx context.Context, ref activation.Ref, msg any) (T, error) {
	var zero T
	v, err := catalog.Ask(ctx, ref, msg)
	if v == nil {
		return zero, err
	}
	t, ok := v.(T)
	if !ok {
		if err != nil {
			return zero, err
		}
		return zero, fmt.Errorf("%w: %s replied %T, want %T", activation.ErrUnexpectedReply, ref, v, zero)
	}
	return t, err
}
