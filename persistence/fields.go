package persistence

import (
	"errors"
	"fmt"
	"reflect"
)

// CheckSlotFields checks, without running any code of the actor, the state
// types of the slots an actor type holds: for every field of type *Slot[T]
// of the struct actor is (or points to), including the fields of embedded
// and nested structs, it checks T with the default codec, JSON (see
// CheckType). It returns nil if every T can be stored, and otherwise the
// errors of the fields that cannot, joined, each naming the field and
// wrapping the *TypeError (so it matches ErrInvalidArgument).
//
// runtime.Register calls it with the actor type, so that the common mistake
// (a state type with an unexported field, an interface, a func...) fails
// the registration. Which provider and which codec a slot uses is only
// known once the factory runs; those are checked when it does, at the
// start of each activation.
//
// Tag a field `persistence:"custom-codec"` when its slot is declared
// WithCodec a codec of its own that stores what JSON cannot (a protobuf
// message, say): CheckSlotFields leaves it out, and its state type is
// checked with its own codec when the factory declares it.
func CheckSlotFields(actor reflect.Type) error {
	if actor == nil {
		return nil
	}
	var errs []error
	w := fieldWalk{actor: actor, seen: map[reflect.Type]bool{}}
	w.walk(actor, "", &errs)
	return errors.Join(errs...)
}

// stateTyper is implemented by every *Slot[T]: it gives T, without a value.
type stateTyper interface{ stateType() reflect.Type }

var stateTyperType = reflect.TypeFor[stateTyper]()

func (s *Slot[T]) stateType() reflect.Type { return reflect.TypeFor[T]() }

type fieldWalk struct {
	actor reflect.Type
	seen  map[reflect.Type]bool // structs walked, against recursive types
}

func (w *fieldWalk) walk(t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || w.seen[t] {
		return
	}
	w.seen[t] = true
	defer delete(w.seen, t)
	for i := range t.NumField() {
		f := t.Field(i)
		name := path + "." + f.Name
		if f.Type.Kind() == reflect.Pointer && f.Type.Implements(stateTyperType) {
			if f.Tag.Get("persistence") == "custom-codec" {
				continue
			}
			st := reflect.Zero(f.Type).Interface().(stateTyper).stateType()
			if err := CheckType(JSON, st); err != nil {
				*errs = append(*errs, fmt.Errorf("actor type %v, field %s (a slot of %v): %w", w.actor, name[1:], st, err))
			}
			continue
		}
		switch ft := f.Type; {
		case ft.Kind() == reflect.Struct, f.Anonymous && ft.Kind() == reflect.Pointer:
			w.walk(ft, name, errs)
		}
	}
}
