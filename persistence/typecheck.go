package persistence

import (
	"cmp"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// TypeChecker is implemented by codecs that can tell, before any value is
// stored, whether values of a type survive a round trip through them.
// Declare calls it for the slot's state type (and the eventsourcing package
// for event and snapshot state types), so that a type the codec would
// silently lose part of fails the declaration (and so the activation)
// instead of losing state after the next reactivation.
//
// CheckType is given the type T whose *T the codec will be asked to Marshal
// and Unmarshal. It returns nil if the codec stores every part of a T, and
// otherwise an error saying what would be lost, preferably a *TypeError.
// Its result is cached per codec type, codec ID and checked type, so it must
// depend on nothing else: codecs that check differently must have different
// IDs (as they store differently, they need them anyway).
//
// A Codec that does not implement TypeChecker is trusted with every type.
// [JSON] implements it; see [CheckType] for its rules.
type TypeChecker interface {
	// CheckType returns nil if the codec stores every part of a t.
	CheckType(t reflect.Type) error
}

// TypeError reports a type that a codec cannot store without losing part of
// it. It matches ErrInvalidArgument.
type TypeError struct {
	Type  reflect.Type // the type checked: a slot's state type, an event type
	Codec string       // the codec's ID
	// Path locates the offending part of Type in Go terms: ".Field" for a
	// struct field (embedded structs by their type name, ".Base.ID"), "[]"
	// for an element of a slice, array or map; "" is Type itself.
	Path string
	// Reason says what is wrong there, e.g. "is unexported and would be lost".
	Reason string
}

// Error implements the error interface.
func (e *TypeError) Error() string {
	what := "it"
	switch {
	case strings.HasPrefix(e.Path, "."):
		what = "field " + e.Path
	case e.Path != "":
		what = "element " + e.Path
	}
	return fmt.Sprintf("persistence: type %v cannot be stored by codec %q: %s %s", e.Type, e.Codec, what, e.Reason)
}

// Is reports whether target is ErrInvalidArgument.
func (e *TypeError) Is(target error) bool { return target == ErrInvalidArgument }

// CheckType reports whether the codec c can store values of type t (as
// pointers to them, the way slots and event registries use codecs): it
// returns nil if c does not implement [TypeChecker], and c's verdict
// otherwise. Errors match ErrInvalidArgument; the verdict is computed once
// per codec and type.
//
// The [JSON] codec follows the rules of encoding/json, and refuses a type
// with a part that would not come back as it was stored:
//
//   - an unexported struct field (encoding/json skips them), unless it is
//     tagged `json:"-"`, which says the loss is deliberate, or is an
//     embedded struct, whose exported fields encoding/json promotes (blank
//     fields, named _, hold nothing and are ignored); an embedded pointer
//     to an unexported struct type cannot be decoded into;
//   - an exported field hidden by another of the same JSON name, which
//     encoding/json drops (Go's rules for embedded fields, except that a
//     tagged name wins at the same depth);
//   - a func, a channel, an unsafe.Pointer or a complex number;
//   - an interface, whose value decodes as map[string]any, []any, float64
//     and so on rather than as what was stored;
//   - a map whose key type is not a string, an integer or an
//     encoding.TextMarshaler that also implements encoding.TextUnmarshaler;
//   - a recursive type (type Node struct{ Next *Node }): the check cannot
//     prove it, and encoding/json loops on cyclic values;
//   - a type that encodes itself (json.Marshaler or encoding.TextMarshaler)
//     but does not decode itself (json.Unmarshaler or
//     encoding.TextUnmarshaler), or does so through pointer-receiver methods
//     where encoding/json does not call them (a map value).
//
// A type that both encodes and decodes itself is trusted with its own
// contents (time.Time, big.Int, json.RawMessage and your own types).
func CheckType(c Codec, t reflect.Type) error {
	tc, ok := c.(TypeChecker)
	if !ok || t == nil {
		return nil
	}
	ct, id := reflect.TypeOf(c), c.ID()
	if v, ok := typeChecks.Load(t); ok {
		for _, r := range *v.(*[]typeCheck) {
			if r.codec == ct && r.id == id {
				return r.err
			}
		}
	}
	err := tc.CheckType(t)
	if err != nil {
		if te, ok := err.(*TypeError); ok {
			if te.Codec == "" {
				cp := *te
				cp.Codec = id
				err = &cp
			}
		} else {
			err = fmt.Errorf("%w: type %v cannot be stored by codec %q: %w", ErrInvalidArgument, t, id, err)
		}
	}
	for {
		old, loaded := typeChecks.Load(t)
		var list []typeCheck
		if loaded {
			list = *old.(*[]typeCheck)
		}
		list = append(list[:len(list):len(list)], typeCheck{codec: ct, id: id, err: err})
		if !loaded {
			if _, loaded = typeChecks.LoadOrStore(t, &list); !loaded {
				return err
			}
			continue
		}
		if typeChecks.CompareAndSwap(t, old, &list) {
			return err
		}
	}
}

// typeChecks caches the verdicts of CheckType: reflect.Type → *[]typeCheck,
// one entry per codec (a copy-on-write list, so that a lookup allocates
// nothing).
var typeChecks sync.Map

type typeCheck struct {
	codec reflect.Type
	id    string
	err   error
}

// CheckType implements TypeChecker with the rules of encoding/json.
func (jsonCodec) CheckType(t reflect.Type) error {
	w := jsonWalk{root: t, active: map[reflect.Type]bool{}, done: map[walkKey]bool{}}
	return w.walk(t, "", true)
}

var (
	jsonMarshalerType   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// jsonWalk checks one type against the rules of encoding/json.
type jsonWalk struct {
	root   reflect.Type
	active map[reflect.Type]bool // the types being walked: meeting one again means recursion
	done   map[walkKey]bool      // the types found storable
}

type walkKey struct {
	t    reflect.Type
	addr bool
}

func (w *jsonWalk) fail(path, format string, args ...any) error {
	return &TypeError{Type: w.root, Codec: "json", Path: path, Reason: fmt.Sprintf(format, args...)}
}

// walk checks t, found at path. addr says whether encoding/json meets the
// value addressable, and so calls the pointer-receiver methods of t: it
// does everywhere but in map values (the codec is handed a pointer).
func (w *jsonWalk) walk(t reflect.Type, path string, addr bool) error {
	enc, dec, ptrOnly := jsonHooks(t, addr)
	switch {
	case enc && dec:
		return nil // it encodes and decodes itself
	case ptrOnly:
		return w.fail(path, "is a %v in a map value, where encoding/json does not call its pointer-receiver MarshalJSON or MarshalText; use a map of *%v", t, t)
	case enc:
		return w.fail(path, "(%v) encodes itself (json.Marshaler or encoding.TextMarshaler) but does not decode itself (json.Unmarshaler or encoding.TextUnmarshaler): what it encodes would not decode back", t)
	}
	key := walkKey{t, addr}
	if w.done[key] {
		return nil
	}
	if w.active[t] {
		return w.fail(path, "makes the type recursive (it leads back to %v): encoding/json loops on cyclic values, and the check cannot prove such a type", t)
	}
	w.active[t] = true
	defer delete(w.active, t)
	var err error
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
	case reflect.Complex64, reflect.Complex128:
		err = w.fail(path, "is a complex number (%v), which encoding/json cannot store", t)
	case reflect.Chan:
		err = w.fail(path, "is a channel (%v), which encoding/json cannot store", t)
	case reflect.Func:
		err = w.fail(path, "is a func (%v), which encoding/json cannot store", t)
	case reflect.UnsafePointer:
		err = w.fail(path, "is an unsafe.Pointer, which encoding/json cannot store")
	case reflect.Interface:
		err = w.fail(path, "is an interface (%v): encoding/json cannot decode it back into the type that was stored", t)
	case reflect.Pointer:
		err = w.walk(t.Elem(), path, true)
	case reflect.Slice:
		err = w.walk(t.Elem(), path+"[]", true)
	case reflect.Array:
		err = w.walk(t.Elem(), path+"[]", addr)
	case reflect.Map:
		if !jsonKey(t.Key()) {
			err = w.fail(path, "is a map with key type %v, which encoding/json cannot use (keys must be strings, integers, or implement encoding.TextMarshaler and encoding.TextUnmarshaler)", t.Key())
			break
		}
		err = w.walk(t.Elem(), path+"[]", false)
	case reflect.Struct:
		err = w.walkStruct(t, path, addr)
	default:
		err = w.fail(path, "is a %v, which encoding/json cannot store", t.Kind())
	}
	if err == nil {
		w.done[key] = true
	}
	return err
}

// jsonHooks reports whether encoding/json encodes a t found at an
// addressable place or not (addr) with its MarshalJSON or MarshalText
// method, and decodes it with UnmarshalJSON or UnmarshalText. ptrOnly
// reports a t that only encodes itself through pointer-receiver methods,
// found where encoding/json does not take its address.
func jsonHooks(t reflect.Type, addr bool) (enc, dec, ptrOnly bool) {
	implements := func(t reflect.Type, ifaces ...reflect.Type) bool {
		for _, i := range ifaces {
			if t.Implements(i) {
				return true
			}
		}
		return false
	}
	// encoding/json takes the address of named, non-pointer values only.
	byPtr := t.Kind() != reflect.Pointer && t.Name() != ""
	enc = implements(t, jsonMarshalerType, textMarshalerType)
	ptrEnc := byPtr && implements(reflect.PointerTo(t), jsonMarshalerType, textMarshalerType)
	dec = implements(t, jsonUnmarshalerType, textUnmarshalerType) ||
		byPtr && implements(reflect.PointerTo(t), jsonUnmarshalerType, textUnmarshalerType)
	if !enc && ptrEnc {
		if !addr && dec {
			return false, dec, true
		}
		enc = addr
	}
	return enc, dec, false
}

// jsonKey reports whether encoding/json encodes and decodes map keys of
// type t.
func jsonKey(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return t.Implements(textMarshalerType) && reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// jsonField is a struct field encoding/json would store, before the
// fields hidden by others of the same name are dropped.
type jsonField struct {
	name   string // its JSON name
	path   string
	depth  int // how deep it is embedded (0: a field of the struct itself)
	tagged bool
	typ    reflect.Type
	addr   bool
	order  int
}

// walkStruct checks the fields of the struct type t, resolving embedded
// structs the way encoding/json does (its typeFields).
func (w *jsonWalk) walkStruct(t reflect.Type, path string, addr bool) error {
	type embedded struct {
		typ   reflect.Type
		path  string
		depth int
		addr  bool
	}
	var fields []jsonField
	next := []embedded{{t, path, 0, addr}}
	read := map[reflect.Type]string{} // the embedded struct types whose fields were read, and where
	for depth := 0; len(next) > 0; depth++ {
		current := next
		next = nil
		queued := map[reflect.Type]string{}
		for _, e := range current {
			if at, ok := read[e.typ]; ok {
				// encoding/json reads the fields of a struct type once, at
				// the shallowest depth it is embedded at.
				if e.typ.NumField() > 0 {
					return w.fail(e.path, "embeds %v, as %s does: encoding/json stores the fields of one of them only, and this one's would be lost", e.typ, orTop(at))
				}
				continue
			}
			read[e.typ] = e.path
			for i := range e.typ.NumField() {
				sf := e.typ.Field(i)
				fpath := e.path + "." + sf.Name
				tag := sf.Tag.Get("json")
				if tag == "-" || sf.Name == "_" {
					continue // deliberately left out, or holding nothing
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validJSONName(name) {
					name = ""
				}
				ft := sf.Type
				if ft.Kind() == reflect.Pointer && ft.Name() == "" {
					ft = ft.Elem()
				}
				switch {
				case !sf.Anonymous && !sf.IsExported():
					return w.fail(fpath, "is unexported and would be lost (export it, or tag it `json:\"-\"` if losing it is intended)")
				case sf.Anonymous && !sf.IsExported() && ft.Kind() != reflect.Struct:
					return w.fail(fpath, "is an unexported embedded %v and would be lost (export it, or tag it `json:\"-\"` if losing it is intended)", sf.Type)
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					tagged := name != ""
					if !tagged {
						name = sf.Name
					}
					fields = append(fields, jsonField{name: name, path: fpath, depth: depth, tagged: tagged,
						typ: sf.Type, addr: e.addr, order: len(fields)})
					continue
				}
				// An embedded struct whose fields encoding/json promotes.
				if sf.Type.Kind() == reflect.Pointer && !sf.IsExported() {
					return w.fail(fpath, "is an embedded pointer to the unexported struct type %v, which encoding/json cannot allocate when decoding", ft)
				}
				if w.active[ft] {
					return w.fail(fpath, "makes the type recursive (it leads back to %v): encoding/json loops on cyclic values, and the check cannot prove such a type", ft)
				}
				if at, dup := queued[ft]; dup {
					if ft.NumField() > 0 {
						return w.fail(fpath, "embeds %v, as %s does at the same depth: encoding/json drops the fields of both, and they would be lost", ft, at)
					}
					continue
				}
				queued[ft] = fpath
				next = append(next, embedded{ft, fpath, depth + 1, e.addr || sf.Type.Kind() == reflect.Pointer})
			}
		}
	}
	// Drop the fields hidden by others of the same JSON name, as
	// encoding/json does: the shallowest wins, a tagged one over an
	// untagged one at the same depth; two equal candidates both lose.
	byName := slices.Clone(fields)
	slices.SortStableFunc(byName, func(a, b jsonField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.depth, b.depth); c != 0 {
			return c
		}
		switch {
		case a.tagged && !b.tagged:
			return -1
		case b.tagged && !a.tagged:
			return 1
		}
		return cmp.Compare(a.order, b.order)
	})
	for i := 0; i < len(byName); {
		j := i + 1
		for j < len(byName) && byName[j].name == byName[i].name {
			j++
		}
		if j-i > 1 {
			a, b := byName[i], byName[i+1]
			if a.depth == b.depth && a.tagged == b.tagged {
				return w.fail(a.path, "has the JSON name %q, as %s does at the same depth: encoding/json drops both, and they would be lost", a.name, b.path)
			}
			return w.fail(b.path, "has the JSON name %q, as %s does, which hides it: it would be lost", b.name, a.path)
		}
		i = j
	}
	for _, f := range fields {
		if err := w.walk(f.typ, f.path, f.addr); err != nil {
			return err
		}
	}
	return nil
}

func orTop(path string) string {
	if path == "" {
		return "the type itself"
	}
	return path
}

// validJSONName is encoding/json's isValidTag: the names it accepts from a
// json tag.
func validJSONName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
