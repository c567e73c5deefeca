package protocluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
)

// Codec ids carried on the wire.
const (
	codecJSON  = 1
	codecProto = 2
)

var (
	// ErrUnregistered is matched by the error of a message, reply or error
	// value whose type has no registered name, on the side that has to
	// encode or decode it.
	ErrUnregistered = errors.New("cluster: message type not registered")
	// ErrUndecodable is matched by the error of a message or reply whose
	// bytes could not be decoded into its registered type.
	ErrUndecodable = errors.New("cluster: message could not be decoded")
)

// msgType is one registered message type.
type msgType struct {
	name   string
	typ    reflect.Type
	codec  uint64
	encode func(v any) ([]byte, error)
	decode func(data []byte) (any, error)
}

// sentinel is a registered error value that errors.Is can match after a
// round trip.
type sentinel struct {
	name string
	err  error
}

// Registry maps message types to stable names and codecs, and sentinel
// errors to names, so that messages, replies and errors can cross members.
// Plain Go types are encoded as JSON; proto.Message types as protobuf, under
// their full protobuf name, without registration. It is safe for concurrent
// use; lookups take no lock.
type Registry struct {
	mu        sync.Mutex // serialises writers
	byName    atomic.Pointer[map[string]*msgType]
	byType    atomic.Pointer[map[reflect.Type]*msgType]
	sentinels atomic.Pointer[[]sentinel]
}

// Messages is the process-wide registry that members use.
var Messages = NewRegistry()

// NewRegistry returns a registry that knows the built-in types (bool,
// string, the integer and float types, []byte, []string, time.Time,
// time.Duration, map[string]string, struct{}) and the sentinel errors of
// context, activation, persistence and this package.
func NewRegistry() *Registry {
	r := &Registry{}
	r.byName.Store(&map[string]*msgType{})
	r.byType.Store(&map[reflect.Type]*msgType{})
	r.sentinels.Store(&[]sentinel{})
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(Register[string](r, "string"))
	// Integers and booleans, the commonest replies, skip encoding/json: the
	// same text, written and read with strconv.
	must(registerInt[int](r, "int", 0))
	must(registerInt[int8](r, "int8", 8))
	must(registerInt[int16](r, "int16", 16))
	must(registerInt[int32](r, "int32", 32))
	must(registerInt[int64](r, "int64", 64))
	must(registerUint[uint](r, "uint", 0))
	must(registerUint[uint8](r, "uint8", 8))
	must(registerUint[uint16](r, "uint16", 16))
	must(registerUint[uint32](r, "uint32", 32))
	must(registerUint[uint64](r, "uint64", 64))
	must(r.add(&msgType{name: "bool", typ: reflect.TypeOf(false), codec: codecJSON,
		encode: func(v any) ([]byte, error) { return strconv.AppendBool(nil, v.(bool)), nil },
		decode: func(data []byte) (any, error) {
			switch string(data) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
			return nil, fmt.Errorf("not a JSON boolean: %q", data)
		}}))
	must(Register[float32](r, "float32"))
	must(Register[float64](r, "float64"))
	must(Register[[]byte](r, "[]byte"))
	must(Register[[]string](r, "[]string"))
	must(Register[time.Time](r, "time.Time"))
	must(Register[time.Duration](r, "time.Duration"))
	must(Register[map[string]string](r, "map[string]string"))
	must(Register[struct{}](r, "struct{}"))
	for _, s := range []sentinel{
		{"context.Canceled", context.Canceled},
		{"context.DeadlineExceeded", context.DeadlineExceeded},
		{"activation.ErrUnknownMessage", activation.ErrUnknownMessage},
		{"activation.ErrUnknownKind", activation.ErrUnknownKind},
		{"activation.ErrInvalidID", activation.ErrInvalidID},
		{"activation.ErrStopped", activation.ErrStopped},
		{"activation.ErrNotStarted", activation.ErrNotStarted},
		{"activation.ErrNoReply", activation.ErrNoReply},
		{"activation.ErrUnexpectedReply", activation.ErrUnexpectedReply},
		{"activation.ErrQuarantined", activation.ErrQuarantined},
		{"activation.ErrSupervisorStopped", activation.ErrSupervisorStopped},
		{"persistence.ErrNotFound", persistence.ErrNotFound},
		{"persistence.ErrConflict", persistence.ErrConflict},
		{"persistence.ErrInvalidArgument", persistence.ErrInvalidArgument},
		{"persistence.ErrTooLarge", persistence.ErrTooLarge},
		{"persistence.ErrUnavailable", persistence.ErrUnavailable},
		{"persistence.ErrCorrupt", persistence.ErrCorrupt},
		{"persistence.ErrClosed", persistence.ErrClosed},
		{"persistence.ErrInternal", persistence.ErrInternal},
		{"persistence.ErrUnknownProvider", persistence.ErrUnknownProvider},
		{"cluster.ErrUnregistered", ErrUnregistered},
		{"cluster.ErrUndecodable", ErrUndecodable},
		{"cluster.ErrLeaseHeld", ErrLeaseHeld},
		{"cluster.ErrMemberLost", ErrMemberLost},
	} {
		must(r.RegisterError(s.name, s.err))
	}
	return r
}

var protoMessageType = reflect.TypeOf((*proto.Message)(nil)).Elem()

// Register makes T cross members under name. T must be a concrete type
// (not an interface). A proto.Message type is encoded as protobuf and must
// be registered under its full protobuf name (or ""), although it crosses
// members without registration too. Other types are encoded as JSON: their
// exported fields cross, as encoding/json sees them. Registering the same
// type under the same name again is a no-op; reusing a name or a type
// otherwise is an error.
func Register[T any](r *Registry, name string) error {
	typ := reflect.TypeOf((*T)(nil)).Elem()
	if typ.Kind() == reflect.Interface {
		return fmt.Errorf("cluster: cannot register interface type %v: register the concrete types", typ)
	}
	t := &msgType{typ: typ}
	if typ.Implements(protoMessageType) {
		var zero T
		full := string(any(zero).(proto.Message).ProtoReflect().Descriptor().FullName())
		if name != "" && name != full {
			return fmt.Errorf("cluster: protobuf type %v must be registered under its full name %q, not %q", typ, full, name)
		}
		t.name, t.codec = full, codecProto
		t.encode = func(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }
		t.decode = func(data []byte) (any, error) {
			m := reflect.New(typ.Elem()).Interface().(proto.Message)
			if err := proto.Unmarshal(data, m); err != nil {
				return nil, err
			}
			return m, nil
		}
	} else {
		if err := validTypeName(name); err != nil {
			return err
		}
		t.name, t.codec = name, codecJSON
		t.encode = func(v any) ([]byte, error) { return json.Marshal(v) }
		t.decode = func(data []byte) (any, error) {
			var v T
			err := json.Unmarshal(data, &v)
			return v, err
		}
	}
	return r.add(t)
}

type signed interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64
}
type unsigned interface {
	~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// registerInt registers a signed integer type with a strconv codec whose
// text is what encoding/json writes and reads.
func registerInt[T signed](r *Registry, name string, bits int) error {
	return r.add(&msgType{name: name, typ: reflect.TypeOf(T(0)), codec: codecJSON,
		encode: func(v any) ([]byte, error) { return strconv.AppendInt(nil, int64(v.(T)), 10), nil },
		decode: func(data []byte) (any, error) {
			n, err := strconv.ParseInt(string(data), 10, bits)
			return T(n), err
		}})
}

func registerUint[T unsigned](r *Registry, name string, bits int) error {
	return r.add(&msgType{name: name, typ: reflect.TypeOf(T(0)), codec: codecJSON,
		encode: func(v any) ([]byte, error) { return strconv.AppendUint(nil, uint64(v.(T)), 10), nil },
		decode: func(data []byte) (any, error) {
			n, err := strconv.ParseUint(string(data), 10, bits)
			return T(n), err
		}})
}

func validTypeName(name string) error {
	if name == "" || len(name) > 256 {
		return fmt.Errorf("cluster: message type name %q must be 1 to 256 bytes", name)
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("cluster: message type name %q contains a space or control character", name)
		}
	}
	return nil
}

func (r *Registry) add(t *msgType) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	names, types := *r.byName.Load(), *r.byType.Load()
	if old := names[t.name]; old != nil {
		if old.typ == t.typ {
			return nil
		}
		return fmt.Errorf("cluster: message type name %q is already registered for %v", t.name, old.typ)
	}
	if old := types[t.typ]; old != nil {
		return fmt.Errorf("cluster: type %v is already registered as %q", t.typ, old.name)
	}
	nn := make(map[string]*msgType, len(names)+1)
	for k, v := range names {
		nn[k] = v
	}
	nn[t.name] = t
	nt := make(map[reflect.Type]*msgType, len(types)+1)
	for k, v := range types {
		nt[k] = v
	}
	nt[t.typ] = t
	r.byName.Store(&nn)
	r.byType.Store(&nt)
	return nil
}

// RegisterError makes errors.Is(err, target) hold on the calling member for
// errors that matched target on the member that returned them. name must be
// stable across members. Registering the same value under the same name
// again is a no-op.
func (r *Registry) RegisterError(name string, target error) error {
	if err := validTypeName(name); err != nil {
		return err
	}
	if target == nil {
		return errors.New("cluster: RegisterError: nil error")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	list := *r.sentinels.Load()
	for _, s := range list {
		switch {
		case s.name == name && s.err == target:
			return nil
		case s.name == name:
			return fmt.Errorf("cluster: error name %q is already registered", name)
		case s.err == target:
			return fmt.Errorf("cluster: error %q is already registered as %q", target, s.name)
		}
	}
	nl := append(append([]sentinel(nil), list...), sentinel{name, target})
	r.sentinels.Store(&nl)
	return nil
}

// Names returns the registered message type names, sorted.
func (r *Registry) Names() []string {
	m := *r.byName.Load()
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// typeOf finds how to encode v.
func (r *Registry) typeOf(v any) (*msgType, error) {
	typ := reflect.TypeOf(v)
	if t := (*r.byType.Load())[typ]; t != nil {
		return t, nil
	}
	if m, ok := v.(proto.Message); ok {
		// A protobuf message crosses without registration: its full name is
		// its stable name, and the receiver finds the type in the global
		// protobuf registry. Remember it, so that the next lookup is quick.
		t := protoType(typ, m.ProtoReflect().Descriptor().FullName())
		_ = r.add(t) // a clash with a registered name only costs the cache
		return t, nil
	}
	return nil, fmt.Errorf("%w: %v (register it with runtime.RegisterMessage on every member)", ErrUnregistered, typ)
}

func protoType(typ reflect.Type, full protoreflect.FullName) *msgType {
	return &msgType{
		name: string(full), typ: typ, codec: codecProto,
		encode: func(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) },
		decode: func(data []byte) (any, error) {
			m := reflect.New(typ.Elem()).Interface().(proto.Message)
			if err := proto.Unmarshal(data, m); err != nil {
				return nil, err
			}
			return m, nil
		},
	}
}

// encode returns the name, codec and bytes of v.
func (r *Registry) encode(v any) (name string, codec uint64, data []byte, err error) {
	t, err := r.typeOf(v)
	if err != nil {
		return "", 0, nil, err
	}
	data, err = t.encode(v)
	if err != nil {
		return "", 0, nil, fmt.Errorf("cluster: encoding %v as %q: %w", t.typ, t.name, err)
	}
	return t.name, t.codec, data, nil
}

// decode rebuilds a value from its name, codec and bytes.
func (r *Registry) decode(name string, codec uint64, data []byte) (any, error) {
	t := (*r.byName.Load())[name]
	if t == nil {
		if codec == codecProto {
			mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
			if err != nil {
				return nil, fmt.Errorf("%w: protobuf message %q is not linked into this program", ErrUnregistered, name)
			}
			m := mt.New().Interface()
			if err := proto.Unmarshal(data, m); err != nil {
				return nil, fmt.Errorf("%w: protobuf message %q: %v", ErrUndecodable, name, err)
			}
			return m, nil
		}
		return nil, fmt.Errorf("%w: %q (register it with runtime.RegisterMessage on every member)", ErrUnregistered, name)
	}
	if t.codec != codec {
		return nil, fmt.Errorf("%w: %q was encoded with codec %d, registered here with codec %d", ErrUndecodable, name, codec, t.codec)
	}
	v, err := t.decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %q as %v: %v", ErrUndecodable, name, t.typ, err)
	}
	return v, nil
}

// sentinelsOf returns the names of the registered errors err matches.
func (r *Registry) sentinelsOf(err error) []string {
	var out []string
	for _, s := range *r.sentinels.Load() {
		if errors.Is(err, s.err) {
			out = append(out, s.name)
		}
	}
	return out
}

func (r *Registry) sentinel(name string) error {
	for _, s := range *r.sentinels.Load() {
		if s.name == name {
			return s.err
		}
	}
	return nil
}

// RemoteError is an error returned by an actor on another member, rebuilt
// on the caller's member. Error returns the original message. errors.Is
// matches the registered errors (see Registry.RegisterError) that the
// original matched; errors.As finds the original's value when its type was
// registered as a message type.
type RemoteError struct {
	// Msg is the original error's message.
	Msg string
	// Value is the original error rebuilt, when its type is registered;
	// nil otherwise.
	Value error
	// Matches lists the registered errors the original matched.
	Matches []error
}

// Error implements the error interface.
func (e *RemoteError) Error() string { return e.Msg }

// Is reports whether the original error matched target.
func (e *RemoteError) Is(target error) bool {
	for _, m := range e.Matches {
		if m == target {
			return true
		}
	}
	return false
}

// Unwrap returns the rebuilt original, if any.
func (e *RemoteError) Unwrap() error { return e.Value }
