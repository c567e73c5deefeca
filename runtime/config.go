package runtime

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
)

// Config is the host's configuration. Build it with options passed to New;
// DefaultConfig gives the starting point.
type Config struct {
	// Providers maps provider names to stores. Slots name them with
	// persistence.Provider. The host does not close them: their owner does,
	// after Shutdown.
	Providers map[string]*persistence.Store
	// StoreURLs maps provider names to store URLs ("embedded:data/app.db",
	// "redis://host:6379/0"...): New opens each store through
	// persistence.OpenStore, and the host closes it when it shuts down.
	StoreURLs map[string]string
	// DefaultProvider is the provider of slots that name none. It may be
	// empty when exactly one provider is registered.
	DefaultProvider string
	// Logger receives the host's logs. Default: no logging.
	Logger *zap.Logger
	// Clock drives idle deactivation. Default: the system clock.
	Clock activation.Clock
	// IdleSweep is how often idle activations are looked for. Default: 1 s.
	IdleSweep time.Duration
	// ActivateTimeout bounds slot loading plus OnActivate. Default: 30 s.
	ActivateTimeout time.Duration
	// DeactivateTimeout bounds OnDeactivate plus the flush, during a
	// shutdown too (whose context may end it sooner). Default: 30 s.
	DeactivateTimeout time.Duration
	// RequestTimeout bounds an Ask whose context has no deadline.
	// Default: 30 s.
	RequestTimeout time.Duration
	// MeterProvider, if not nil, receives the host's metrics: store
	// operations and their latency per provider, and activation lifecycle
	// counts. Default: nil, no metrics and no cost. See
	// docs/observability.md.
	MeterProvider metric.MeterProvider
	// TracerProvider, if not nil, gets a span for every store operation.
	// Default: nil, no spans and no cost.
	TracerProvider trace.TracerProvider
	// Cluster, if not nil, makes the host a cluster member (see
	// WithCluster). Default: nil, a single host.
	Cluster *ClusterConfig
}

// DefaultConfig returns the defaults: no providers, no logging, the system
// clock, a one-second idle sweep and 30-second timeouts.
func DefaultConfig() Config {
	return Config{
		Providers:         map[string]*persistence.Store{},
		StoreURLs:         map[string]string{},
		Logger:            zap.NewNop(),
		Clock:             activation.SystemClock{},
		IdleSweep:         time.Second,
		ActivateTimeout:   30 * time.Second,
		DeactivateTimeout: 30 * time.Second,
		RequestTimeout:    30 * time.Second,
	}
}

// Validate reports every problem with the configuration, joined with
// errors.Join (nil if there is none), so that one run shows them all.
func (c *Config) Validate() error {
	var errs []error
	for name, s := range c.Providers {
		if err := persistence.ValidateName("provider", name); err != nil {
			errs = append(errs, err)
		}
		if s == nil {
			errs = append(errs, fmt.Errorf("runtime: provider %q is nil", name))
		}
	}
	for name, u := range c.StoreURLs {
		if err := persistence.ValidateName("provider", name); err != nil {
			errs = append(errs, err)
		}
		if u == "" {
			errs = append(errs, fmt.Errorf("runtime: provider %q: empty store URL", name))
		}
		if _, dup := c.Providers[name]; dup {
			errs = append(errs, fmt.Errorf("runtime: provider %q is given both a store and a store URL", name))
		}
	}
	if c.DefaultProvider != "" {
		_, store := c.Providers[c.DefaultProvider]
		_, byURL := c.StoreURLs[c.DefaultProvider]
		if !store && !byURL {
			errs = append(errs, fmt.Errorf("%w: default provider %q is not registered", persistence.ErrUnknownProvider, c.DefaultProvider))
		}
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("runtime: nil Logger (use zap.NewNop())"))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("runtime: nil Clock"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"IdleSweep", c.IdleSweep}, {"ActivateTimeout", c.ActivateTimeout},
		{"DeactivateTimeout", c.DeactivateTimeout}, {"RequestTimeout", c.RequestTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("runtime: %s must be positive, got %v", d.name, d.v))
		}
	}
	if c.Cluster != nil {
		errs = append(errs, c.Cluster.validate())
	}
	return errors.Join(errs...)
}

// Option changes the Config New starts from.
type Option func(*Config)

// WithProvider registers a store under name. Registering a name twice keeps
// the last store. The store stays the caller's: the host never closes it;
// close it after Shutdown.
func WithProvider(name string, s *persistence.Store) Option {
	return func(c *Config) { c.Providers[name] = s }
}

// WithStoreURL registers under name the store that url names, opened by New
// through persistence.OpenStore ("embedded:data/app.db", "memory:", or the
// URL of any provider package the program imports: "redis://...",
// "postgres://..."). The embedded and memory schemes need no import: this
// package links those two providers. The host owns a store it opened: it
// closes it when Shutdown has deactivated every actor. Registering a name
// twice keeps the last URL.
func WithStoreURL(name, url string) Option {
	return func(c *Config) { c.StoreURLs[name] = url }
}

// WithDefaultProvider names the provider of slots that name none.
func WithDefaultProvider(name string) Option { return func(c *Config) { c.DefaultProvider = name } }

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option { return func(c *Config) { c.Logger = l } }

// WithClock sets the clock that drives idle deactivation (tests use a fake).
func WithClock(clk activation.Clock) Option { return func(c *Config) { c.Clock = clk } }

// WithIdleSweep sets how often idle activations are looked for.
func WithIdleSweep(d time.Duration) Option { return func(c *Config) { c.IdleSweep = d } }

// WithActivateTimeout bounds slot loading plus OnActivate.
func WithActivateTimeout(d time.Duration) Option { return func(c *Config) { c.ActivateTimeout = d } }

// WithDeactivateTimeout bounds OnDeactivate plus the flush.
func WithDeactivateTimeout(d time.Duration) Option {
	return func(c *Config) { c.DeactivateTimeout = d }
}

// WithRequestTimeout bounds an Ask whose context has no deadline.
func WithRequestTimeout(d time.Duration) Option { return func(c *Config) { c.RequestTimeout = d } }

// WithMeterProvider turns metrics on: the host records store operations and
// activation lifecycle events with meters from mp. nil turns them off (the
// default).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *Config) { c.MeterProvider = mp }
}

// WithTracerProvider turns tracing on: every store operation gets a span
// from tp, a child of the span in the caller's context. nil turns it off
// (the default).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *Config) { c.TracerProvider = tp }
}
