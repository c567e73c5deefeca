package persistence_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

// benchState is a state type of the usual shape: exported fields, a nested
// struct, a slice, a map and a time.
type benchState struct {
	Owner   profile          `json:"owner"`
	Balance int64            `json:"balance"`
	History []int64          `json:"history"`
	Limits  map[string]int64 `json:"limits"`
	Opened  time.Time        `json:"opened"`
}

// BenchmarkDeclare measures what the factory of every activation pays for
// declaring its slots: one set, two slots.
func BenchmarkDeclare(b *testing.B) {
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"mem": memory.New(nil)}, "mem")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		set := persistence.NewSlots(reg, "Account", "a1")
		persistence.Declare[benchState](set, "account")
		persistence.Declare[profile](set, "profile")
		if set.Err() != nil {
			b.Fatal(set.Err())
		}
	}
}

// BenchmarkJSONCheckTypeWalk measures the JSON codec's walk of a state
// type: what CheckType pays once per codec and type (Declare then finds
// the verdict cached).
func BenchmarkJSONCheckTypeWalk(b *testing.B) {
	tc := persistence.JSON.(persistence.TypeChecker)
	typ := reflect.TypeFor[benchState]()
	b.ReportAllocs()
	for b.Loop() {
		if err := tc.CheckType(typ); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckTypeCached measures what Declare adds to every
// activation: finding the cached verdict of the slot's codec.
func BenchmarkCheckTypeCached(b *testing.B) {
	typ := reflect.TypeFor[benchState]()
	b.ReportAllocs()
	for b.Loop() {
		if err := persistence.CheckType(persistence.JSON, typ); err != nil {
			b.Fatal(err)
		}
	}
}
