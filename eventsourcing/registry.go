package eventsourcing

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// RegistryOptions configures a Registry. The zero value (or nil) gives the
// defaults.
type RegistryOptions struct {
	// Codec encodes and decodes every event of the registry; nil means
	// persistence.JSON. Its id is stored with each event, and a stored event
	// written by another codec fails to decode with a clear error rather
	// than being read by the wrong one. Unmarshal must not retain the data
	// it decodes (journals and replays reuse their buffers) and, like
	// Marshal, must be safe for concurrent use: long replays decode on
	// several goroutines.
	Codec persistence.Codec
}

// Registry maps Go event types to stable names and schema versions, and
// says how to read the events stored by older versions of the code: the
// upcasters that turn version n of an event into version n+1, renamed event
// types, and retired event types that replay skips.
//
// Build it at startup with RegisterEvent, Upcast, UpcastData, RenameEvent
// and IgnoreEvent, then hand it to NewKind. NewKind seals it: from then on it
// is read-only and safe for concurrent use, and further registrations fail
// with ErrRegistrySealed. One Registry may serve several kinds.
//
// Each registration function returns its error and also records the first
// one, which Err reports and NewKind returns: a setup that ignores the
// return values still fails at NewKind, before any event is written.
type Registry struct {
	codec persistence.Codec

	mu      sync.Mutex // guards the fields below until sealed; read-only afterwards
	err     error
	types   map[string]*eventType // by registered name
	byGo    map[reflect.Type]*eventType
	steps   map[string]map[uint32]*step // by registered name, then by the version upcast from
	renames map[string]string           // stored name → newer name
	ignored map[string]bool

	sealed atomic.Bool
	stored map[string]storedType // built by seal: every name an event may be stored under
}

// eventType is one registered event type at its current version.
type eventType struct {
	name    string
	version uint32
	typ     reflect.Type
	decode  func(c persistence.Codec, data []byte) (any, error) // the current version into a T
	encode  func(c persistence.Codec, v any) ([]byte, error)    // a T
	// decodeStream decodes the next value of a JSON stream into a T (see
	// decodeBatch).
	decodeStream func(dec *json.Decoder) (any, error)
	steps        map[uint32]*step // set by seal
	low          uint32           // the oldest version the steps can upcast from
}

// step upcasts the encoded or decoded event of one version to the next.
// Exactly one of raw and convert is set.
type step struct {
	raw func(data []byte) ([]byte, error)

	from, to  reflect.Type
	decodeIn  func(c persistence.Codec, data []byte) (any, error) // bytes into a From
	convert   func(v any) (any, error)                            // From into To
	encodeOut func(c persistence.Codec, v any) ([]byte, error)    // a To into bytes
}

// storedType says how events stored under one name are read.
type storedType struct {
	et      *eventType // nil when ignored
	ignored bool
}

// NewRegistry returns an empty registry.
func NewRegistry(opts *RegistryOptions) *Registry {
	r := &Registry{
		codec: persistence.JSON,
		types: map[string]*eventType{}, byGo: map[reflect.Type]*eventType{},
		steps: map[string]map[uint32]*step{}, renames: map[string]string{}, ignored: map[string]bool{},
	}
	if opts != nil && opts.Codec != nil {
		r.codec = opts.Codec
	}
	return r
}

// Codec returns the registry's codec.
func (r *Registry) Codec() persistence.Codec { return r.codec }

// Err returns the first error met by a registration function, or nil.
func (r *Registry) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Names returns the registered event names, sorted.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Version returns the current schema version of the event registered under
// name, and whether there is one.
func (r *Registry) Version(name string) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	et, ok := r.types[name]
	if !ok {
		return 0, false
	}
	return et.version, true
}

// change runs fn under the lock unless the registry is sealed, and records
// fn's first error.
func (r *Registry) change(fn func() error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sealed.Load() {
		return ErrRegistrySealed // the registry in use stays valid
	}
	err := fn()
	if err != nil && r.err == nil {
		r.err = err
	}
	return err
}

// RegisterEvent registers the event type T under name at schema version
// version. The name and version are stored with every event of the type,
// so keep the name stable for as long as events of it exist; change the Go
// type as you like, bumping the version and declaring an upcaster (Upcast
// or UpcastData) from the previous version whenever stored events of the
// previous version would no longer decode into T as they should.
//
// Names are 1 to 256 bytes of UTF-8 without control characters. T is the
// type Raise receives (a pointer to a T is accepted too) and Apply sees;
// it must not be an interface type, and the registry's codec must be able
// to store it whole (see persistence.CheckType: with the default JSON
// codec, no unexported fields, funcs, channels or interfaces). A name or a
// type registered twice is an error.
func RegisterEvent[T any](r *Registry, name string, version uint32) error {
	typ := reflect.TypeFor[T]()
	return r.change(func() error {
		if err := validEventName(name); err != nil {
			return err
		}
		if typ.Kind() == reflect.Interface {
			return invalidf("event %q: type %v is an interface; register a concrete type", name, typ)
		}
		if err := persistence.CheckType(r.codec, typ); err != nil {
			return fmt.Errorf("eventsourcing: event %q: %w", name, err)
		}
		if _, dup := r.types[name]; dup {
			return invalidf("event %q is registered twice", name)
		}
		if other, dup := r.byGo[typ]; dup {
			return invalidf("type %v is registered twice, as %q and %q", typ, other.name, name)
		}
		if r.ignored[name] {
			return invalidf("event %q is both registered and ignored", name)
		}
		if _, renamed := r.renames[name]; renamed {
			return invalidf("event %q is both registered and renamed", name)
		}
		et := &eventType{
			name: name, version: version, typ: typ,
			decode: func(c persistence.Codec, data []byte) (any, error) {
				var v T
				if err := c.Unmarshal(data, &v); err != nil {
					return nil, err
				}
				return v, nil
			},
			encode: func(c persistence.Codec, v any) ([]byte, error) {
				t := v.(T)
				return c.Marshal(&t)
			},
			decodeStream: func(dec *json.Decoder) (any, error) {
				var v T
				if err := dec.Decode(&v); err != nil {
					return nil, err
				}
				return v, nil
			},
		}
		r.types[name] = et
		r.byGo[typ] = et
		return nil
	})
}

// Upcast declares how to turn the event registered under name, as stored at
// schema version from, into version from+1: the stored data is decoded into
// a From, and fn returns the To that version from+1 would have stored. When
// from+1 is the current version, To must be the registered type; otherwise
// it is what the next upcaster takes (or, if the next one is UpcastData, it
// is encoded with the registry's codec for it).
//
// Upcasters run during replay, for every old event, possibly on several
// goroutines at once: fn must be a pure function of its argument. They
// never rewrite the journal: events stay as they were written.
func Upcast[From, To any](r *Registry, name string, from uint32, fn func(From) (To, error)) error {
	if fn == nil {
		return r.change(func() error { return invalidf("event %q: nil upcaster from version %d", name, from) })
	}
	st := &step{
		from: reflect.TypeFor[From](), to: reflect.TypeFor[To](),
		decodeIn: func(c persistence.Codec, data []byte) (any, error) {
			var v From
			if err := c.Unmarshal(data, &v); err != nil {
				return nil, err
			}
			return v, nil
		},
		convert: func(v any) (any, error) {
			out, err := fn(v.(From))
			if err != nil {
				return nil, err
			}
			return out, nil
		},
		encodeOut: func(c persistence.Codec, v any) ([]byte, error) {
			t := v.(To)
			return c.Marshal(&t)
		},
	}
	return r.addStep(name, from, st)
}

// UpcastData declares how to turn the encoded data of the event registered
// under name, as stored at schema version from, into the encoded data of
// version from+1: a transformation of the codec's bytes (for the default
// codec, of the JSON document), for changes that are easier to make on the
// document than through Go types (renaming a field, say). Like Upcast, fn
// must be a pure function, and may run on several goroutines at once.
func UpcastData(r *Registry, name string, from uint32, fn func(data []byte) ([]byte, error)) error {
	if fn == nil {
		return r.change(func() error { return invalidf("event %q: nil upcaster from version %d", name, from) })
	}
	return r.addStep(name, from, &step{raw: fn})
}

func (r *Registry) addStep(name string, from uint32, st *step) error {
	return r.change(func() error {
		if err := validEventName(name); err != nil {
			return err
		}
		m := r.steps[name]
		if m == nil {
			m = map[uint32]*step{}
			r.steps[name] = m
		}
		if _, dup := m[from]; dup {
			return invalidf("event %q: two upcasters from version %d", name, from)
		}
		m[from] = st
		return nil
	})
}

// RenameEvent declares that events stored under the name old are the events
// now registered under current (or under what current was renamed to in
// turn): they decode, with the same schema versions and upcasters, into the
// type registered under current. Use it when an event type's name must
// change: register the type under its new name and declare the old one
// here; stored events keep their old name.
func RenameEvent(r *Registry, old, current string) error {
	return r.change(func() error {
		if err := validEventName(old); err != nil {
			return err
		}
		if err := validEventName(current); err != nil {
			return err
		}
		if old == current {
			return invalidf("event %q renamed to itself", old)
		}
		if _, dup := r.renames[old]; dup {
			return invalidf("event %q is renamed twice", old)
		}
		if _, reg := r.types[old]; reg {
			return invalidf("event %q is both registered and renamed", old)
		}
		if r.ignored[old] {
			return invalidf("event %q is both renamed and ignored", old)
		}
		r.renames[old] = current
		return nil
	})
}

// IgnoreEvent declares that stored events named name are skipped: Apply
// never sees them and subscriptions do not deliver them, but they keep
// their positions in the stream. Use it to retire an event type whose
// effect no longer matters to the state; the name must not be registered.
func IgnoreEvent(r *Registry, name string) error {
	return r.change(func() error {
		if err := validEventName(name); err != nil {
			return err
		}
		if _, reg := r.types[name]; reg {
			return invalidf("event %q is both registered and ignored", name)
		}
		if _, renamed := r.renames[name]; renamed {
			return invalidf("event %q is both renamed and ignored", name)
		}
		r.ignored[name] = true
		return nil
	})
}

func validEventName(name string) error {
	if name == "" || len(name) > driver.MaxEventTypeLen || !utf8.ValidString(name) {
		return invalidf("event name %q must be 1 to %d bytes of UTF-8", name, driver.MaxEventTypeLen)
	}
	for _, c := range name {
		if unicode.IsControl(c) {
			return invalidf("event name %q contains a control character", name)
		}
	}
	return nil
}

// seal checks the registrations as a whole (complete upcaster chains whose
// types fit, renames that lead to registered events) and makes the registry
// read-only. Sealing an already sealed registry only reports its error.
func (r *Registry) seal() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sealed.Load() {
		return r.err
	}
	if r.err != nil {
		return r.err
	}
	if err := r.check(); err != nil {
		r.err = err
		return err
	}
	r.sealed.Store(true)
	return nil
}

func (r *Registry) check() error {
	var errs []error
	for name, steps := range r.steps {
		et := r.types[name]
		if et == nil {
			errs = append(errs, invalidf("upcaster for event %q, which is not registered", name))
			continue
		}
		low := et.version
		for from := range steps {
			if from >= et.version {
				errs = append(errs, invalidf("event %q: upcaster from version %d, but the current version is %d", name, from, et.version))
			}
			low = min(low, from)
		}
		for v := low; v < et.version; v++ {
			st := steps[v]
			if st == nil {
				errs = append(errs, invalidf("event %q: upcasters from version %d but none from version %d", name, low, v))
				break
			}
			if st.raw != nil {
				continue
			}
			switch next := steps[v+1]; {
			case v+1 == et.version && st.to != et.typ:
				errs = append(errs, invalidf("event %q: the upcaster from version %d returns %v, but version %d is %v",
					name, v, st.to, et.version, et.typ))
			case v+1 < et.version && next != nil && next.raw == nil && st.to != next.from:
				errs = append(errs, invalidf("event %q: the upcaster from version %d returns %v, but the one from version %d takes %v",
					name, v, st.to, v+1, next.from))
			}
		}
		et.steps, et.low = steps, low
	}
	for _, et := range r.types {
		if et.steps == nil {
			et.low = et.version
		}
	}
	stored := make(map[string]storedType, len(r.types)+len(r.renames)+len(r.ignored))
	for name, et := range r.types {
		stored[name] = storedType{et: et}
	}
	for name := range r.ignored {
		stored[name] = storedType{ignored: true}
	}
	for old := range r.renames {
		cur, seen := old, map[string]bool{old: true}
		for {
			next, ok := r.renames[cur]
			if !ok {
				break
			}
			if seen[next] {
				errs = append(errs, invalidf("event renames form a cycle through %q", old))
				break
			}
			seen[next] = true
			cur = next
		}
		switch {
		case r.types[cur] != nil:
			stored[old] = storedType{et: r.types[cur]}
		case r.ignored[cur]:
			stored[old] = storedType{ignored: true}
		default:
			errs = append(errs, invalidf("event %q is renamed to %q, which is not registered", old, cur))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	r.stored = stored
	return nil
}

// encode turns a raised event into the event to store, and decodes it back:
// what Apply sees after the commit is exactly what a replay will see, and an
// event that does not survive its codec fails here, before it is stored.
// The registry must be sealed.
func (r *Registry) encode(v any) (persistence.Event, any, error) {
	if v == nil {
		return persistence.Event{}, nil, fmt.Errorf("%w: nil event", ErrUnknownEvent)
	}
	typ := reflect.TypeOf(v)
	et := r.byGo[typ]
	if et == nil && typ.Kind() == reflect.Pointer {
		if et = r.byGo[typ.Elem()]; et != nil {
			rv := reflect.ValueOf(v)
			if rv.IsNil() {
				return persistence.Event{}, nil, fmt.Errorf("%w: nil %v", ErrUnknownEvent, typ)
			}
			v = rv.Elem().Interface()
		}
	}
	if et == nil {
		return persistence.Event{}, nil, fmt.Errorf("%w: %v is not registered", ErrUnknownEvent, typ)
	}
	data, err := et.encode(r.codec, v)
	if err != nil {
		return persistence.Event{}, nil, fmt.Errorf("eventsourcing: encoding event %q: %w", et.name, err)
	}
	back, err := et.decode(r.codec, data)
	if err != nil {
		return persistence.Event{}, nil, fmt.Errorf("eventsourcing: event %q does not decode from its own encoding: %w", et.name, err)
	}
	return persistence.Event{Type: et.name, Schema: et.version, Codec: r.codec.ID(), Data: data}, back, nil
}

// decode turns a stored event into the registered type at its current
// version, running the upcasters the stored version needs. It returns the
// registered name; ignored events give ("", nil, nil). The registry must be
// sealed. Errors are wrapped by the caller with the stream and position.
func (r *Registry) decode(e *persistence.Event) (string, any, error) {
	st, ok := r.stored[e.Type]
	if !ok {
		return "", nil, fmt.Errorf("%w %q (schema version %d)", ErrUnknownEvent, e.Type, e.Schema)
	}
	if st.ignored {
		return "", nil, nil
	}
	et := st.et
	if e.Codec != r.codec.ID() {
		return "", nil, fmt.Errorf("event %q was written with codec %q, the registry uses %q", e.Type, e.Codec, r.codec.ID())
	}
	if e.Schema == et.version {
		v, err := et.decode(r.codec, e.Data)
		if err != nil {
			return "", nil, fmt.Errorf("event %q, schema version %d: %w", e.Type, e.Schema, err)
		}
		return et.name, v, nil
	}
	v, err := et.upcast(r.codec, e.Schema, e.Data)
	if err != nil {
		return "", nil, fmt.Errorf("event %q, schema version %d: %w", e.Type, e.Schema, err)
	}
	return et.name, v, nil
}

// upcast runs the chain of steps from version schema to the current one.
func (et *eventType) upcast(c persistence.Codec, schema uint32, data []byte) (any, error) {
	switch {
	case schema > et.version:
		return nil, fmt.Errorf("stored by a newer version of the code: the registered version is %d", et.version)
	case schema < et.low:
		return nil, fmt.Errorf("no upcaster from version %d (the current version is %d)", schema, et.version)
	}
	var (
		val     any
		haveVal bool
		last    *step // the typed step that produced val
	)
	for v := schema; v < et.version; v++ {
		st := et.steps[v]
		var err error
		if st.raw != nil {
			if haveVal {
				if data, err = last.encodeOut(c, val); err != nil {
					return nil, fmt.Errorf("encoding the result of the upcaster from version %d: %w", v-1, err)
				}
				haveVal = false
			}
			if data, err = st.raw(data); err != nil {
				return nil, fmt.Errorf("upcaster from version %d: %w", v, err)
			}
			continue
		}
		if !haveVal {
			if val, err = st.decodeIn(c, data); err != nil {
				return nil, fmt.Errorf("decoding version %d into %v: %w", v, st.from, err)
			}
		}
		if val, err = st.convert(val); err != nil {
			return nil, fmt.Errorf("upcaster from version %d: %w", v, err)
		}
		haveVal, last = true, st
	}
	if haveVal {
		return val, nil // seal checked that the last step returns the registered type
	}
	v, err := et.decode(c, data)
	if err != nil {
		return nil, fmt.Errorf("decoding the upcast data: %w", err)
	}
	return v, nil
}
