package persistence_test

//lint:file-ignore U1000 the unexported fields of the test types are there to be refused by the type check, never used

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

// Types the JSON codec refuses.
type (
	accountState struct{ balance int64 }
	hiddenOnly   struct{ a, b int }
	taggedHidden struct {
		N int `json:"n"`
		m int
	}
	counter     int
	withCounter struct {
		Name string
		counter
	}
	inner         struct{ X int }
	withInnerPtr  struct{ *inner }
	base          struct{ ID, secret string }
	withBase      struct{ base }
	withFunc      struct{ OnChange func() }
	withChanMap   struct{ Subs map[string]chan int }
	withUnsafe    struct{ P []unsafe.Pointer }
	withComplex   struct{ C *[2]complex128 }
	withAny       struct{ Meta any }
	withError     struct{ Err error }
	withAnyMap    struct{ Attrs map[string]any }
	withBoolKeys  struct{ Seen map[bool]int }
	point         struct{ X, Y int }
	withPointKeys struct{ Grid map[point]string }
	withFloatKeys struct{ Prices map[float64]string }
	node          struct {
		Value int
		Next  *node
	}
	tree    struct{ Children []tree }
	ping    struct{ Pong *pong }
	pong    struct{ Ping *ping }
	SelfRef struct{ *SelfRef }
	idA     struct{ ID int }
	idB     struct{ ID int }
	bothIDs struct {
		idA
		idB
	}
	shadowed struct {
		idA
		ID string
	}
	keyTagged struct {
		Key int `json:"ID"`
	}
	tagBeatsName struct {
		idA
		keyTagged
	}
	withBigMap  struct{ M map[string]big.Int }
	onlyOut     struct{ V int }
	withOnlyOut struct{ O onlyOut }
	withAnonTim struct{ T struct{ time.Time } }
	withEmbErr  struct{ error }
	holdsA      struct{ idA }
	twiceA      struct {
		idA
		holdsA
	}
	sameDepth struct {
		holdsA
		Other struct{ idA }
	}
)

func (onlyOut) MarshalJSON() ([]byte, error) { return []byte(`"out"`), nil }

// Types the JSON codec accepts.
type (
	deliberate struct {
		Name  string
		cache map[string]int `json:"-"`
		mu    sync.Mutex     `json:"-"`
	}
	extended struct {
		idA
		Extra int
	}
	promoted     struct{ inner }
	Ident        struct{ ID int }
	embeddedPtr  struct{ *Ident }
	taggedEmbeds struct {
		idA `json:"a"`
		idB `json:"b"`
	}
	money     struct{ cents int64 }
	withMoney struct {
		Price money
		Tax   *money
		ByDay map[string]money
	}
	times struct {
		At    time.Time
		Maybe *time.Time
		Every time.Duration
		Log   []time.Time
	}
	numbers struct {
		Big     big.Int
		BigPtrs map[string]*big.Int
		Raw     json.RawMessage
		Num     json.Number
	}
	addrs struct {
		Seen map[netip.Addr]int
		Last netip.Addr
	}
	collections struct {
		Bytes  []byte
		ByID   map[int64]profile
		ByCode map[uint16][]string
		Matrix [3][3]float64
		Ptrs   []*profile
		Nested struct {
			Deep struct{ Leaf string }
		}
	}
	twoOfAKind struct {
		From, To idA
		idA
	}
	// A recursive type that encodes itself is trusted.
	chain     struct{ next *chain }
	lenient   struct{ V int }
	withEmpty struct {
		_    [0]func() // not comparable
		E    struct{}
		Tags []struct{}
	}
)

func (m money) MarshalJSON() ([]byte, error)  { return json.Marshal(m.cents) }
func (m *money) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &m.cents) }
func (c *chain) MarshalJSON() ([]byte, error) { return []byte("null"), nil }
func (c *chain) UnmarshalJSON(b []byte) error { return nil }
func (l *lenient) UnmarshalJSON(b []byte) error { // decodes only: encoding is by its fields
	type plain lenient
	return json.Unmarshal(b, (*plain)(l))
}

// sameTag has two fields tagged with the same JSON name (go vet would
// refuse to declare it).
var sameTag = reflect.StructOf([]reflect.StructField{
	{Name: "X", Type: reflect.TypeFor[int](), Tag: `json:"x"`},
	{Name: "Y", Type: reflect.TypeFor[int](), Tag: `json:"x"`},
})

func TestJSONCodecRefuses(t *testing.T) {
	cases := []struct {
		typ    reflect.Type
		path   string
		reason string // a part of the reason
	}{
		{reflect.TypeFor[accountState](), ".balance", "is unexported and would be lost"},
		{reflect.TypeFor[hiddenOnly](), ".a", "is unexported"},
		{reflect.TypeFor[taggedHidden](), ".m", "is unexported"},
		{reflect.TypeFor[withCounter](), ".counter", "is an unexported embedded persistence_test.counter"},
		{reflect.TypeFor[withInnerPtr](), ".inner", "embedded pointer to the unexported struct type persistence_test.inner"},
		{reflect.TypeFor[withBase](), ".base.secret", "is unexported"},
		{reflect.TypeFor[withFunc](), ".OnChange", "is a func (func())"},
		{reflect.TypeFor[withChanMap](), ".Subs[]", "is a channel (chan int)"},
		{reflect.TypeFor[withUnsafe](), ".P[]", "is an unsafe.Pointer"},
		{reflect.TypeFor[withComplex](), ".C[]", "is a complex number (complex128)"},
		{reflect.TypeFor[complex64](), "", "is a complex number (complex64)"},
		{reflect.TypeFor[withAny](), ".Meta", "is an interface (interface {})"},
		{reflect.TypeFor[withError](), ".Err", "is an interface (error)"},
		{reflect.TypeFor[withAnyMap](), ".Attrs[]", "is an interface"},
		{reflect.TypeFor[any](), "", "is an interface"},
		{reflect.TypeFor[withBoolKeys](), ".Seen", "key type bool"},
		{reflect.TypeFor[withPointKeys](), ".Grid", "key type persistence_test.point"},
		{reflect.TypeFor[withFloatKeys](), ".Prices", "key type float64"},
		{reflect.TypeFor[node](), ".Next", "recursive (it leads back to persistence_test.node)"},
		{reflect.TypeFor[tree](), ".Children[]", "recursive"},
		{reflect.TypeFor[ping](), ".Pong.Ping", "recursive (it leads back to persistence_test.ping)"},
		{reflect.TypeFor[SelfRef](), ".SelfRef", "recursive"},
		{reflect.TypeFor[bothIDs](), ".idA.ID", `has the JSON name "ID", as .idB.ID does at the same depth`},
		{reflect.TypeFor[shadowed](), ".idA.ID", `as .ID does, which hides it`},
		{sameTag, ".X", `has the JSON name "x", as .Y does at the same depth`},
		{reflect.TypeFor[tagBeatsName](), ".idA.ID", `as .keyTagged.Key does, which hides it`},
		{reflect.TypeFor[withBigMap](), ".M[]", "pointer-receiver MarshalJSON"},
		{reflect.TypeFor[withOnlyOut](), ".O", "encodes itself (json.Marshaler or encoding.TextMarshaler) but does not decode itself"},
		{reflect.TypeFor[withAnonTim](), ".T", "does not decode itself"},
		{reflect.TypeFor[withEmbErr](), ".error", "unexported embedded error"},
		{reflect.TypeFor[twiceA](), ".holdsA.idA", "embeds persistence_test.idA, as .idA does"},
	}
	for _, c := range cases {
		t.Run(c.typ.String()+c.path, func(t *testing.T) {
			err := persistence.CheckType(persistence.JSON, c.typ)
			var te *persistence.TypeError
			if !errors.As(err, &te) {
				t.Fatalf("CheckType = %v, want a *TypeError", err)
			}
			if te.Path != c.path || !strings.Contains(te.Reason, c.reason) || te.Type != c.typ || te.Codec != "json" {
				t.Errorf("got %#v, want path %q, reason containing %q", te, c.path, c.reason)
			}
			if !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Errorf("%v does not match ErrInvalidArgument", err)
			}
			where := "it "
			switch {
			case strings.HasPrefix(c.path, "."):
				where = "field " + c.path + " "
			case c.path != "":
				where = "element " + c.path + " "
			}
			want := fmt.Sprintf("persistence: type %v cannot be stored by codec \"json\": %s%s", c.typ, where, te.Reason)
			if err.Error() != want {
				t.Errorf("message %q\nwant     %q", err, want)
			}
		})
	}
}

func TestJSONCodecAccepts(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[profile](),
		reflect.TypeFor[deliberate](),
		reflect.TypeFor[extended](),
		reflect.TypeFor[promoted](),
		reflect.TypeFor[embeddedPtr](),
		reflect.TypeFor[taggedEmbeds](),
		reflect.TypeFor[withMoney](),
		reflect.TypeFor[times](),
		reflect.TypeFor[numbers](),
		reflect.TypeFor[addrs](),
		reflect.TypeFor[collections](),
		reflect.TypeFor[twoOfAKind](),
		reflect.TypeFor[sameDepth](),
		reflect.TypeFor[chain](),
		reflect.TypeFor[lenient](),
		reflect.TypeFor[withEmpty](),
		reflect.TypeFor[struct{}](),
		reflect.TypeFor[int](),
		reflect.TypeFor[*profile](),
		reflect.TypeFor[[]string](),
		reflect.TypeFor[map[string]profile](),
		reflect.TypeFor[time.Time](),
	} {
		if err := persistence.CheckType(persistence.JSON, typ); err != nil {
			t.Errorf("%v: %v", typ, err)
		}
	}
}

// opaqueCodec stores through encoding/json but does not say which types it
// can store: it is trusted with every type.
type opaqueCodec struct{}

func (opaqueCodec) ID() string                         { return "opaque" }
func (opaqueCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (opaqueCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// pickyCodec refuses every type whose name starts with "with", counting
// its checks.
type pickyCodec struct {
	opaqueCodec
	id     string
	checks *atomic.Int64
	typed  bool // return a *TypeError rather than a plain error
}

func (c pickyCodec) ID() string { return c.id }

// pickyRuns numbers the picky codecs' IDs: verdicts are cached per codec
// ID for the life of the process, which outlives one run of a test.
var pickyRuns atomic.Int64

func pickyID(name string) string { return fmt.Sprintf("%s-%d", name, pickyRuns.Add(1)) }

func (c pickyCodec) CheckType(t reflect.Type) error {
	c.checks.Add(1)
	if !strings.HasPrefix(t.Name(), "with") {
		return nil
	}
	if c.typed {
		return &persistence.TypeError{Type: t, Reason: "is not welcome"}
	}
	return errors.New("not welcome")
}

func TestDeclareChecksTheStateType(t *testing.T) {
	reg := registry(t, map[string]*persistence.Store{"mem": memory.New(nil)}, "mem")

	set := persistence.NewSlots(reg, "Account", "a1")
	persistence.Declare[profile](set, "profile")
	persistence.Declare[accountState](set, "acct")
	err := set.Err()
	want := `actor kind "Account", slot "acct": persistence: type persistence_test.accountState cannot be stored by codec "json": ` +
		"field .balance is unexported and would be lost (export it, or tag it `json:\"-\"` if losing it is intended)"
	if err == nil || err.Error() != want {
		t.Fatalf("Declare of a lossy state type: %v\nwant %s", err, want)
	}
	if !errors.Is(err, persistence.ErrInvalidArgument) || persistence.CodeOf(err) != persistence.InvalidArgument {
		t.Errorf("%v: not an invalid argument", err)
	}

	// A codec without CheckType is trusted.
	set = persistence.NewSlots(reg, "Account", "a1")
	persistence.Declare[accountState](set, "acct", persistence.WithCodec(opaqueCodec{}))
	persistence.Declare[withAny](set, "any", persistence.WithCodec(opaqueCodec{}))
	if err := set.Err(); err != nil {
		t.Fatalf("a codec without CheckType: %v", err)
	}

	// A codec's own verdict, cached per codec and type.
	var checks atomic.Int64
	for _, typed := range []bool{false, true} {
		checks.Store(0)
		id := pickyID(fmt.Sprintf("picky-%v", typed))
		picky := persistence.WithCodec(pickyCodec{id: id, checks: &checks, typed: typed})
		for range 3 {
			set = persistence.NewSlots(reg, "Account", "a1")
			persistence.Declare[accountState](set, "acct", picky) // json would refuse it
			persistence.Declare[withFunc](set, "f", picky)
			err := set.Err()
			var te *persistence.TypeError
			switch {
			case !errors.Is(err, persistence.ErrInvalidArgument):
				t.Fatalf("typed=%v: %v, want ErrInvalidArgument", typed, err)
			case typed && (!errors.As(err, &te) || te.Codec != id ||
				!strings.HasSuffix(err.Error(), `persistence: type persistence_test.withFunc cannot be stored by codec "`+id+`": it is not welcome`)):
				t.Fatalf("typed=%v: %v", typed, err)
			case !typed && !strings.HasSuffix(err.Error(), `type persistence_test.withFunc cannot be stored by codec "`+id+`": not welcome`):
				t.Fatalf("typed=%v: %v", typed, err)
			}
		}
		if n := checks.Load(); n != 2 {
			t.Errorf("typed=%v: CheckType ran %d times for 2 types declared 3 times each", typed, n)
		}
	}
}

// The types the JSON codec refuses do lose data, and the ones it accepts
// come back as they were: the rules describe encoding/json, not a wish.
func TestJSONCodecRulesMatchEncodingJSON(t *testing.T) {
	roundTrip := func(v, out any) string {
		data, err := persistence.JSON.Marshal(v)
		if err != nil {
			return "marshal: " + err.Error()
		}
		if err := persistence.JSON.Unmarshal(data, out); err != nil {
			return "unmarshal: " + err.Error()
		}
		return string(data)
	}
	lossy := []struct {
		in, out any
	}{
		{&accountState{balance: 5}, &accountState{}},
		{&withBase{base{ID: "x", secret: "s"}}, &withBase{}},
		{&bothIDs{idA{1}, idB{2}}, &bothIDs{}},
		{&shadowed{idA{1}, "x"}, &shadowed{}},
		{&tagBeatsName{idA{1}, keyTagged{2}}, &tagBeatsName{}},
		{&twiceA{idA{1}, holdsA{idA{2}}}, &twiceA{}},
		{&withBigMap{map[string]big.Int{"a": *big.NewInt(5)}}, &withBigMap{}},
		{&withInnerPtr{&inner{1}}, &withInnerPtr{}},
	}
	for _, c := range lossy {
		got := roundTrip(c.in, c.out)
		if reflect.DeepEqual(c.in, c.out) {
			t.Errorf("%T survives encoding/json (%s), yet the codec refuses it", c.in, got)
		}
	}
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	kept := []struct {
		in, out any
	}{
		{&extended{idA{1}, 2}, &extended{}},
		{&promoted{inner{3}}, &promoted{}},
		{&embeddedPtr{&Ident{4}}, &embeddedPtr{}},
		{&taggedEmbeds{idA{1}, idB{2}}, &taggedEmbeds{}},
		{&withMoney{Price: money{5}, Tax: &money{1}, ByDay: map[string]money{"mon": {7}}}, &withMoney{}},
		{&times{At: at, Maybe: &at, Every: time.Second, Log: []time.Time{at}}, &times{}},
		{&sameDepth{holdsA{idA{1}}, struct{ idA }{idA{2}}}, &sameDepth{}},
		{&twoOfAKind{idA{1}, idA{2}, idA{3}}, &twoOfAKind{}},
	}
	for _, c := range kept {
		got := roundTrip(c.in, c.out)
		if !reflect.DeepEqual(c.in, c.out) {
			t.Errorf("%T does not survive encoding/json (%s), yet the codec accepts it", c.in, got)
		}
	}
}

// Activations declare slots concurrently: the cache of verdicts is shared.
func TestCheckTypeConcurrently(t *testing.T) {
	var checks atomic.Int64
	codecs := make([]persistence.Codec, 4)
	for i := range codecs {
		codecs[i] = pickyCodec{id: pickyID("concurrent"), checks: &checks}
	}
	codecs = append(codecs, persistence.JSON, opaqueCodec{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				c := codecs[(g+i)%len(codecs)]
				err := persistence.CheckType(c, reflect.TypeFor[withFunc]())
				if _, opaque := c.(opaqueCodec); opaque != (err == nil) {
					t.Errorf("codec %s: %v", c.ID(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := checks.Load(); n < 4 || n > 4*8 {
		t.Errorf("%d checks for 4 checking codecs", n)
	}
}

// recursiveActor embeds a pointer to its own type: CheckSlotFields must not
// loop.
type recursiveActor struct {
	*recursiveActor
	Good *persistence.Slot[struct{ N int }]
	bad  *persistence.Slot[withAny]
}

func TestCheckSlotFields(t *testing.T) {
	err := persistence.CheckSlotFields(reflect.TypeFor[*recursiveActor]())
	var te *persistence.TypeError
	if !errors.As(err, &te) || !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), "field bad (a slot of") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "Good") {
		t.Fatalf("a storable slot was refused: %v", err)
	}
	for _, ok := range []reflect.Type{nil, reflect.TypeFor[int](), reflect.TypeFor[struct{ X *persistence.Slot[int] }]()} {
		if err := persistence.CheckSlotFields(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}
