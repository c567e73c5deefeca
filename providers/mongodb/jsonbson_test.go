package mongodb

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/quarkgo/quark/persistence/driver"
)

var testKey = driver.Key{Kind: "BankAccount", ID: "acc/42", Slot: "state"}

// encode builds the document of a JSON record and returns it with its form.
func encode(t testing.TB, data []byte) ([]byte, stateForm) {
	t.Helper()
	r := driver.Record{Data: data, Codec: "json", Schema: 1}
	return appendDocument(nil, driver.EncodeKey(testKey), testKey, &r, 1, time.Unix(1700000000, 0), true, driver.DefaultTombstoneRetention)
}

// stateOf returns the state field of doc as the driver decodes it.
func stateOf(t testing.TB, doc []byte) (bson.RawValue, bool) {
	t.Helper()
	if err := bson.Raw(doc).Validate(); err != nil {
		t.Fatalf("the driver rejects the document: %v", err)
	}
	v, err := bson.Raw(doc).LookupErr(fieldState)
	return v, err == nil
}

type address struct {
	Street string   `json:"street"`
	Tags   []string `json:"tags"`
}

type account struct {
	Owner    string             `json:"owner"`
	Balance  int64              `json:"balance"`
	Rate     float64            `json:"rate"`
	Small    float64            `json:"small"`
	Huge     float64            `json:"huge"`
	Active   bool               `json:"active"`
	Note     *string            `json:"note"`
	Address  address            `json:"address"`
	History  []int              `json:"history"`
	Limits   map[string]int     `json:"limits"`
	Nested   [][]map[string]any `json:"nested"`
	Unicode  string             `json:"unicode"`
	Escapes  string             `json:"escapes"`
	Empty    []string           `json:"empty"`
	Negative int32              `json:"negative"`
}

// TestGoJSONIsStoredAsStateOnly: what encoding/json writes for usual state
// types renders back exactly, so it is stored once, as BSON.
func TestGoJSONIsStoredAsStateOnly(t *testing.T) {
	values := []any{
		account{
			Owner: "Zoë", Balance: 1 << 40, Rate: 0.035, Small: 1e-9, Huge: 3e22, Active: true,
			Address: address{Street: "1 Main St", Tags: []string{"home", ""}},
			History: []int{1, -2, 3}, Limits: map[string]int{"b": 2, "a": 1},
			Nested:  [][]map[string]any{{{"x": 1.5, "y": nil}}, {}},
			Unicode: "账户 😀 e\u0301", Escapes: "<a href=\"x\">&amp;</a>\n\t\\ \u2028 \x01 \x7f",
			Negative: math.MinInt32,
		},
		map[string]any{},
		[]any{1, "two", 3.25, false, nil, map[string]any{"k": []any{}}},
		"just a string",
		42, -7, int64(math.MaxInt64), int64(math.MinInt64), 0.1, 1e21, 1e20, 123456789.125, -0.000001,
		true, nil,
	}
	for _, v := range values {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		doc, form := encode(t, data)
		if form != formState {
			t.Errorf("%s: form %d, want state only", data, form)
			continue
		}
		if _, ok := stateOf(t, doc); !ok {
			t.Errorf("%s: no state field", data)
		}
		if _, err := bson.Raw(doc).LookupErr(fieldData); err == nil {
			t.Errorf("%s: a data field besides the state", data)
		}
		rec, ok, err := decodeDocument(doc, time.Now())
		if err != nil || !ok || !bytes.Equal(rec.Data, data) {
			t.Errorf("%s: decoded %q, %v, %v", data, rec.Data, ok, err)
		}
	}
}

// TestStateIsNativeBSON: the state is BSON a MongoDB query can use:
// documents with their keys in order, int32 or int64 integers, doubles,
// strings, booleans, null and arrays.
func TestStateIsNativeBSON(t *testing.T) {
	doc, _ := encode(t, []byte(`{"balance":150,"big":5000000000,"rate":0.5,"owner":"ann","ok":true,"n":null,"h":[1,"x"],"a":{"z":1,"b":2}}`))
	v, ok := stateOf(t, doc)
	if !ok {
		t.Fatal("no state")
	}
	var got bson.D
	if err := v.Unmarshal(&got); err != nil {
		t.Fatal(err)
	}
	want := bson.D{
		{Key: "balance", Value: int32(150)}, {Key: "big", Value: int64(5000000000)}, {Key: "rate", Value: 0.5},
		{Key: "owner", Value: "ann"}, {Key: "ok", Value: true}, {Key: "n", Value: nil},
		{Key: "h", Value: bson.A{int32(1), "x"}}, {Key: "a", Value: bson.D{{Key: "z", Value: int32(1)}, {Key: "b", Value: int32(2)}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state = %v\nwant    %v", got, want)
	}
}

// TestNonCanonicalJSONKeepsItsBytes: JSON whose BSON renders differently is
// stored as BSON (for queries) and as bytes (for reads), and reads give the
// bytes back.
func TestNonCanonicalJSONKeepsItsBytes(t *testing.T) {
	for _, data := range []string{
		`{"a": 1}`, " {}", "{}\n", `{"a":1.0}`, `{"a":1E3}`, `{"a":-0}`, `{"a":-0.0}`, `{"a":1000000000000000000000}`,
		`{"a":"\u0041"}`, `{"a":"\/"}`, `{"a":"<"}`, `{"a":"\u00e9"}`, `{"a":"\uD83D\uDE00"}`, "{\"a\":\"\u2028\"}",
		`[1, 2]`, `{"a":0.10}`, `{"a":1e-07}`, `{"a":18446744073709551615}`,
		`{"a":1,"_id":2}`, `{"_id":1}`, `[{"x":{"_id":null}}]`, // servers may move _id first
	} {
		doc, form := encode(t, []byte(data))
		if form != formStateAndBytes {
			t.Errorf("%q: form %d, want state and bytes", data, form)
			continue
		}
		rec, ok, err := decodeDocument(doc, time.Now())
		if err != nil || !ok || string(rec.Data) != data {
			t.Errorf("%q: decoded %q, %v, %v", data, rec.Data, ok, err)
		}
		// The state means what the bytes mean.
		v, _ := stateOf(t, doc)
		rendered, err := renderJSON(nil, byte(v.Type), v.Value, fieldState)
		if err != nil {
			t.Errorf("%q: rendering the state: %v", data, err)
			continue
		}
		var a, b any
		if json.Unmarshal([]byte(data), &a) != nil || json.Unmarshal(rendered, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%q: the state renders as %s, which means something else", data, rendered)
		}
	}
}

// TestJSONWithoutBSONFormIsBytesOnly: data that is not JSON, or JSON MongoDB
// cannot store faithfully as a document, is stored as bytes only.
func TestJSONWithoutBSONFormIsBytesOnly(t *testing.T) {
	deep := strings.Repeat("[", maxStateDepth+1) + strings.Repeat("]", maxStateDepth+1)
	for _, data := range []string{
		"", "not json", "{", `{"a":1}x`, `{"a":1,}`, `[1,]`, `{"a" 1}`, "\xff", `"\xff"`, `{"a":01}`, `{"a":.5}`,
		`{"a":1e}`, `{"a":-}`, `{"a":tru}`, "\"raw\ttab\"",
		`{"":1}`, `{"$set":1}`, `{"a.b":1}`, `{"a\u0000":1}`, `{"a":1,"a":2}`, `{"x":{"a":1,"a":1}}`,
		`"\ud800"`, `"\udc00\ud800"`, `"\ud800x"`, `"\u12"`, `"\q"`, `{"a":1e400}`, deep,
	} {
		doc, form := encode(t, []byte(data))
		if form != formBytes {
			t.Errorf("%q: form %d, want bytes only", data, form)
		}
		if _, ok := stateOf(t, doc); ok {
			t.Errorf("%q: has a state field", data)
		}
		rec, ok, err := decodeDocument(doc, time.Now())
		if err != nil || !ok || string(rec.Data) != data {
			t.Errorf("%q: decoded %q, %v, %v", data, rec.Data, ok, err)
		}
	}
	// Just within the depth limit is a document.
	ok := strings.Repeat("[", maxStateDepth) + strings.Repeat("]", maxStateDepth)
	if _, form := encode(t, []byte(ok)); form != formState {
		t.Errorf("%d nested arrays: form %d, want state only", maxStateDepth, form)
	}
	// Other codecs, and compressed JSON, are opaque.
	for _, r := range []driver.Record{
		{Data: []byte(`{"a":1}`), Codec: "raw"},
		{Data: []byte(`{"a":1}`), Codec: "json", Compressed: true},
	} {
		doc, form := appendDocument(nil, "k", testKey, &r, 1, time.Now(), true, driver.DefaultTombstoneRetention)
		if _, has := stateOf(t, doc); form != formBytes || has {
			t.Errorf("codec %q compressed %v: form %d, state %v; want bytes only", r.Codec, r.Compressed, form, has)
		}
	}
}

// TestOversizeStateIsDropped: when the BSON state and the bytes together
// would pass MongoDB's 16 MiB limit, the document holds the bytes only.
func TestOversizeStateIsDropped(t *testing.T) {
	// An array of small numbers takes about 5 times its JSON size in BSON.
	var b strings.Builder
	b.WriteString("[0")
	for b.Len() < 4<<20 {
		b.WriteString(",0")
	}
	b.WriteString("]")
	data := []byte(b.String())
	doc, form := encode(t, data)
	if form != formBytes || len(doc) > maxDocumentBytes {
		t.Errorf("%d-byte array: form %d, document %d bytes; want bytes only, at most %d", len(data), form, len(doc), maxDocumentBytes)
	}
	// The largest record the store accepts fits, whatever its key.
	huge := driver.Key{Kind: strings.Repeat("%", driver.MaxKindLen), ID: strings.Repeat("/", driver.MaxIDLen), Slot: strings.Repeat("{", driver.MaxSlotLen)}
	r := driver.Record{Data: make([]byte, MaxRecordBytesLimit), Codec: strings.Repeat("c", driver.MaxCodecLen),
		UpdatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	doc, _ = appendDocument(nil, driver.EncodeKey(huge), huge, &r, math.MaxInt64-1, time.Now(), true, driver.DefaultTombstoneRetention)
	if len(doc) > maxDocumentBytes {
		t.Errorf("a record of MaxRecordBytesLimit bytes makes a %d-byte document, over %d", len(doc), maxDocumentBytes)
	}
}

func TestAppendJSONFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 1.5e300, 5e-324, math.MaxFloat64,
		-math.SmallestNonzeroFloat64, 123456.789, 1e-10, 2.5e-100} {
		want, _ := json.Marshal(f)
		if got := appendJSONFloat(nil, f); string(got) != string(want) {
			t.Errorf("appendJSONFloat(%v) = %s, encoding/json writes %s", f, got, want)
		}
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	for _, s := range []string{"", "plain", string(all), "a\u2028b\u2029c", "😀", "\xed\xa0\x80", "<>&'\""} {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, []byte(s)); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, encoding/json writes %s", s, got, want)
		}
	}
}

// TestRenderRejectsNonJSONTypes: a state holding BSON types JSON has no
// form for cannot be read as JSON; the error names the field.
func TestRenderRejectsNonJSONTypes(t *testing.T) {
	for name, v := range map[string]any{
		"date":     bson.NewDateTimeFromTime(time.Unix(0, 0)),
		"objectId": bson.NewObjectID(),
		"binData":  bson.Binary{Data: []byte{1}},
		"decimal":  bson.NewDecimal128(0, 1),
		"nan":      math.NaN(),
		"inf":      math.Inf(-1),
		"regex":    bson.Regex{Pattern: "x"},
	} {
		raw, err := bson.Marshal(bson.D{{Key: "outer", Value: bson.D{{Key: "list", Value: bson.A{1, v}}}}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = renderJSON(nil, bsonDocument, raw, fieldState)
		if err == nil || !strings.Contains(err.Error(), "state.outer.list.1") {
			t.Errorf("%s: renderJSON = %v, want an error naming state.outer.list.1", name, err)
		}
	}
}

// TestIteratorRejectsMalformedBSON: truncated or inconsistent bytes give
// an error, never a panic or a read past the end.
func TestIteratorRejectsMalformedBSON(t *testing.T) {
	good, _ := encode(t, []byte(`{"a":[1,"x",{"b":null}]}`))
	for i := range len(good) {
		for _, cut := range [][]byte{good[:i], append(bytes.Clone(good[:i]), good[i+1:]...)} {
			_, _, err := decodeDocument(cut, time.Now())
			if err == nil && bson.Raw(cut).Validate() != nil {
				t.Errorf("a damaged document (%d bytes) decoded without error", len(cut))
			}
		}
	}
}

// FuzzDocumentRoundTrip: whatever the data and codec, the document decodes
// to the record that was written, and the driver accepts it; JSON stored as
// a BSON state means what the bytes mean.
func FuzzDocumentRoundTrip(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2.5,"x",null,true]`, `{"a":{"b":[{}]}}`, ` 1 `, `"\u00e9"`, "\x00", `{"$a":1}`} {
		f.Add([]byte(s), true, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, isJSON, compressed bool) {
		r := driver.Record{Data: data, Codec: "raw", Schema: 7, Compressed: compressed, UpdatedAt: time.Unix(0, 1234567891)}
		if isJSON {
			r.Codec = "json"
		}
		doc, form := appendDocument(nil, driver.EncodeKey(testKey), testKey, &r, 3, time.Now(), true, driver.DefaultTombstoneRetention)
		if err := bson.Raw(doc).Validate(); err != nil {
			t.Fatalf("the driver rejects the document of %q: %v", data, err)
		}
		got, ok, err := decodeDocument(doc, time.Now())
		if err != nil || !ok {
			t.Fatalf("decoding the document of %q: %v, %v", data, ok, err)
		}
		if !bytes.Equal(got.Data, data) || got.Version != 3 || got.Codec != r.Codec || got.Schema != 7 ||
			got.Compressed != compressed || !got.UpdatedAt.Equal(r.UpdatedAt) || !got.ExpiresAt.IsZero() {
			t.Fatalf("round trip of %q gave %+v", data, got)
		}
		if form == formBytes {
			return
		}
		if !isJSON || compressed || !json.Valid(data) {
			t.Fatalf("%q (codec %s, compressed %v) got a BSON state", data, r.Codec, compressed)
		}
		v, _ := stateOf(t, doc)
		rendered, err := renderJSON(nil, byte(v.Type), v.Value, fieldState)
		if err != nil {
			t.Fatalf("rendering the state of %q: %v", data, err)
		}
		if form == formState && !bytes.Equal(rendered, data) {
			t.Fatalf("state-only form for %q, which renders as %q", data, rendered)
		}
		var a, b any
		da, db := json.NewDecoder(bytes.NewReader(data)), json.NewDecoder(bytes.NewReader(rendered))
		da.UseNumber()
		db.UseNumber()
		if da.Decode(&a) != nil || db.Decode(&b) != nil || !sameJSON(a, b) {
			t.Fatalf("%q is stored as a state that renders as %q", data, rendered)
		}
	})
}

// sameJSON compares decoded JSON values, numbers by their float64 value.
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		fx, err1 := x.Float64()
		fy, err2 := y.Float64()
		return err1 == nil && err2 == nil && fx == fy
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !sameJSON(v, y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
