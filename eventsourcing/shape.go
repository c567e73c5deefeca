package eventsourcing

import (
	"encoding"
	"encoding/json"
	"fmt"
	"hash"
	"hash/fnv"
	"reflect"
)

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// shapeOf returns a fingerprint of the layout of type t: its kind and, for
// structs, the names, tags and shapes of the fields, recursively. Snapshots
// record the shape of the state type they were taken of; a snapshot of
// another shape is not trusted (the state type changed since), and recovery
// replays the events instead. Types that encode themselves (json.Marshaler,
// encoding.TextMarshaler) count by their name only.
func shapeOf(t reflect.Type) string {
	h := fnv.New64a()
	writeShape(h, t, map[reflect.Type]int{})
	return fmt.Sprintf("%016x", h.Sum64())
}

func writeShape(h hash.Hash64, t reflect.Type, seen map[reflect.Type]int) {
	if id, ok := seen[t]; ok { // a recursive type
		fmt.Fprintf(h, "@%d", id)
		return
	}
	if t.Name() != "" {
		seen[t] = len(seen)
	}
	if t.Implements(jsonMarshaler) || t.Implements(textMarshaler) ||
		reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
		fmt.Fprintf(h, "M(%s.%s)", t.PkgPath(), t.String())
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		h.Write([]byte("struct{"))
		for i := range t.NumField() {
			f := t.Field(i)
			fmt.Fprintf(h, "%s %t %q ", f.Name, f.Anonymous, f.Tag)
			writeShape(h, f.Type, seen)
			h.Write([]byte(";"))
		}
		h.Write([]byte("}"))
	case reflect.Pointer:
		h.Write([]byte("*"))
		writeShape(h, t.Elem(), seen)
	case reflect.Slice:
		h.Write([]byte("[]"))
		writeShape(h, t.Elem(), seen)
	case reflect.Array:
		fmt.Fprintf(h, "[%d]", t.Len())
		writeShape(h, t.Elem(), seen)
	case reflect.Map:
		h.Write([]byte("map["))
		writeShape(h, t.Key(), seen)
		h.Write([]byte("]"))
		writeShape(h, t.Elem(), seen)
	default:
		h.Write([]byte(t.Kind().String()))
	}
}
