package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence/driver"
)

// jsonCases are inputs with the form classifyJSON must give them.
var jsonCases = []struct {
	data string
	want jsonForm
}{
	// Canonical: JSONB prints them back unchanged (without its spaces).
	{`{"balance":100}`, jsonCanonical},
	{`{"a":1,"b":2,"aa":3}`, jsonCanonical},
	{`[1,"two",3.50,-4,0,0.000,true,false,null,{},[]]`, jsonCanonical},
	{`"plain"`, jsonCanonical},
	{`12345678901234567890123456789012345678901234567890.5`, jsonCanonical},
	{`"\" \\ \b \f \n \r \t \u0001 \u001f"`, jsonCanonical},
	{"\"raw unicode é 😀 \u2028 \x7f\"", jsonCanonical},
	{`{"é":1,"zz":2}`, jsonNormalised}, // "é" is 2 bytes like "zz", and sorts after it
	{`{"zz":2,"é":1}`, jsonCanonical},
	{`{"a":{"b":[1,{"c":null}]}}`, jsonCanonical},
	{`{"a\tc":2,"a\nb":1}`, jsonCanonical},  // keys compare decoded: tab (9) before newline (10)
	{`{"a\nb":1,"a\tc":2}`, jsonNormalised}, // ... so this order is not JSONB's
	{`[]`, jsonCanonical},
	{`-0.5`, jsonCanonical},

	// Normalised: JSONB takes them but prints them otherwise.
	{`{"balance": 100}`, jsonNormalised},
	{` {"a":1}`, jsonNormalised},
	{"{\"a\":1}\n", jsonNormalised},
	{`{"b":1,"a":2}`, jsonNormalised},
	{`{"aa":1,"b":2}`, jsonNormalised},
	{`{"a":1,"a":2}`, jsonNormalised},
	{`"a\/b"`, jsonNormalised},
	{`"\u0041"`, jsonNormalised},
	{`"\u00e9"`, jsonNormalised},
	{`"\u001F"`, jsonNormalised},
	{`"\u0008"`, jsonNormalised},
	{`"\u000a"`, jsonNormalised},
	{`"\ud83d\ude00"`, jsonNormalised},
	{`1e2`, jsonNormalised},
	{`1.5E+1`, jsonNormalised},
	{`-0`, jsonNormalised},
	{`-0.00`, jsonNormalised},
	{`[1, 2]`, jsonNormalised},
	{`{"x":"\u003c"}`, jsonNormalised}, // what encoding/json writes for "<"

	// Bytes only: not JSON, or not something JSONB takes.
	{``, jsonBytesOnly},
	{`{`, jsonBytesOnly},
	{`{"a":1,}`, jsonBytesOnly},
	{`[1 2]`, jsonBytesOnly},
	{`01`, jsonBytesOnly},
	{`1.`, jsonBytesOnly},
	{`.5`, jsonBytesOnly},
	{`+1`, jsonBytesOnly},
	{`1e`, jsonBytesOnly},
	{`NaN`, jsonBytesOnly},
	{`tru`, jsonBytesOnly},
	{`nulls`, jsonBytesOnly},
	{`"unterminated`, jsonBytesOnly},
	{"\"raw\tcontrol\"", jsonBytesOnly},
	{`"bad \x escape"`, jsonBytesOnly},
	{`"\u12"`, jsonBytesOnly},
	{`"\u0000"`, jsonBytesOnly},
	{`"\ud800"`, jsonBytesOnly},
	{`"\udc00\ud800"`, jsonBytesOnly},
	{`"\ud800\u0041"`, jsonBytesOnly},
	{"\"\xff\"", jsonBytesOnly},
	{`1e1001`, jsonBytesOnly},
	{`1e-99999`, jsonBytesOnly},
	{strings.Repeat("1", maxNumberLen+1), jsonBytesOnly},
	{strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), jsonBytesOnly},
	{`{"a" 1}`, jsonBytesOnly},
	{`{1:2}`, jsonBytesOnly},
	{`"a" "b"`, jsonBytesOnly},
}

func TestClassifyJSON(t *testing.T) {
	for _, tt := range jsonCases {
		if got := classifyJSON([]byte(tt.data)); got != tt.want {
			t.Errorf("classifyJSON(%s) = %v, want %v", short(tt.data), got, tt.want)
		}
	}
	deep := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	if got := classifyJSON([]byte(deep)); got != jsonCanonical {
		t.Errorf("classifyJSON(%d nested arrays) = %v, want jsonCanonical", maxJSONDepth, got)
	}
}

func (f jsonForm) String() string {
	return [...]string{"jsonBytesOnly", "jsonNormalised", "jsonCanonical"}[f]
}

func short(s string) string {
	if len(s) > 60 {
		return fmt.Sprintf("%q...(%d bytes)", s[:60], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// serverJSONB asks the server for JSONB's rendering of data, compacted; ok
// is false if the server refuses data as JSONB.
func serverJSONB(t testing.TB, pool *pgxpool.Pool, data []byte) (text []byte, ok bool) {
	t.Helper()
	var out []byte
	// A savepoint-free probe: a failed cast fails only this statement.
	err := pool.QueryRow(context.Background(), `SELECT $1::text::jsonb::text`, string(data)).Scan(&out)
	if err != nil {
		return nil, false
	}
	var c bytes.Buffer
	if err := json.Compact(&c, out); err != nil {
		t.Fatalf("the server's JSONB text %q does not compact: %v", out, err)
	}
	if got := compactJSONB(out); !bytes.Equal(got, c.Bytes()) {
		t.Errorf("compactJSONB(%q) = %q, json.Compact gives %q", out, got, c.Bytes())
	}
	return c.Bytes(), true
}

// checkAgainstServer checks classifyJSON's verdict on data against the
// server: canonical means the server prints data back unchanged, normalised
// means it takes data but prints it otherwise. A bytes-only verdict may be
// conservative, but not for data this test generates within the limits.
func checkAgainstServer(t testing.TB, pool *pgxpool.Pool, data []byte, strict bool) {
	t.Helper()
	if !json.Valid(data) || bytes.Contains(data, []byte(`\u0000`)) {
		if got := classifyJSON(data); got != jsonBytesOnly {
			t.Errorf("classifyJSON(%s) = %v for data the server refuses", short(string(data)), got)
		}
		return
	}
	text, accepted := serverJSONB(t, pool, data)
	got := classifyJSON(data)
	switch {
	case got == jsonCanonical && (!accepted || !bytes.Equal(text, data)):
		t.Errorf("classifyJSON(%s) = canonical, but the server gives back %s (accepted %v)",
			short(string(data)), short(string(text)), accepted)
	case got == jsonNormalised && !accepted:
		t.Errorf("classifyJSON(%s) = normalised, but the server refuses it as JSONB", short(string(data)))
	case strict && accepted && bytes.Equal(text, data) && got != jsonCanonical:
		t.Errorf("classifyJSON(%s) = %v, but the server gives it back unchanged", short(string(data)), got)
	case strict && accepted && got == jsonBytesOnly:
		t.Errorf("classifyJSON(%s) = bytes only, but the server takes it", short(string(data)))
	}
}

// TestClassifyJSONAgainstServer checks classifyJSON against PostgreSQL's own
// JSONB on the table above, on encoding/json's output for a few types, and
// on a few thousand random documents.
func TestClassifyJSONAgainstServer(t *testing.T) {
	pool := testPool(t)
	for _, tt := range jsonCases {
		limit := strings.HasPrefix(tt.data, "1e") || len(tt.data) > maxNumberLen || strings.HasPrefix(tt.data, "[[[[")
		checkAgainstServer(t, pool, []byte(tt.data), !limit)
	}
	type account struct {
		ID      string            `json:"id"`
		Owner   string            `json:"owner"`
		Balance int64             `json:"balance"`
		Rate    float64           `json:"rate"`
		Tags    map[string]string `json:"tags"`
		Note    string            `json:"note,omitempty"`
	}
	for _, v := range []any{
		struct {
			Balance int64 `json:"balance"`
		}{1500},
		account{ID: "acc-1", Owner: "Ann <ann@example.com>", Balance: -3, Rate: 1e21, Tags: map[string]string{"b": "1", "aa": "2"}},
		account{ID: "x", Note: "line\nbreak\u2028 & tab\t"},
		map[string]any{"z": []any{1.5, "é", nil}, "a": map[string]int{"y": 1, "x": 2}},
		[]float64{0.1, 1e-7, 123456789, math.Copysign(0, -1)},
	} {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstServer(t, pool, data, true)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	n := 3000
	if testing.Short() {
		n = 300
	}
	var forms [3]int
	for range n {
		var b bytes.Buffer
		genJSON(rng, &b, 0)
		checkAgainstServer(t, pool, b.Bytes(), true)
		forms[classifyJSON(b.Bytes())]++
	}
	t.Logf("%d random documents: %d canonical, %d normalised, %d bytes only",
		n, forms[jsonCanonical], forms[jsonNormalised], forms[jsonBytesOnly])
	if forms[jsonCanonical] < n/10 || forms[jsonNormalised] < n/10 {
		t.Errorf("the generator should give both forms often: %v", forms)
	}
}

// genJSON writes a random JSON document, often but not always in JSONB's
// canonical form.
func genJSON(rng *rand.Rand, b *bytes.Buffer, depth int) {
	space := func() {
		if rng.IntN(12) == 0 {
			b.WriteString([]string{" ", "\n", "\t", "\r\n  "}[rng.IntN(4)])
		}
	}
	space()
	kind := rng.IntN(10)
	if depth > 3 {
		kind = 4 + rng.IntN(6)
	}
	switch kind {
	case 0, 1:
		keys := make([]string, rng.IntN(5))
		for i := range keys {
			keys[i] = genString(rng)
		}
		if rng.IntN(2) == 0 {
			slices.SortFunc(keys, func(a, c string) int {
				ka, kc := decodeJSONString(a), decodeJSONString(c)
				if len(ka) != len(kc) {
					return len(ka) - len(kc)
				}
				return strings.Compare(ka, kc)
			})
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			space()
			b.WriteString(k)
			space()
			b.WriteByte(':')
			genJSON(rng, b, depth+1)
		}
		space()
		b.WriteByte('}')
	case 2, 3:
		b.WriteByte('[')
		for i := range rng.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			genJSON(rng, b, depth+1)
		}
		space()
		b.WriteByte(']')
	case 4, 5:
		b.WriteString(genString(rng))
	case 6, 7:
		b.WriteString(genNumber(rng))
	default:
		b.WriteString([]string{"true", "false", "null"}[rng.IntN(3)])
	}
	space()
}

// genString returns a JSON string literal mixing raw characters and every
// kind of escape.
func genString(rng *rand.Rand) string {
	pieces := []string{
		"a", "b", "ab", "Z", " ", "é", "😀", "\u2028", "\x7f", "ß", "/",
		`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
		`\u0001`, `\u001f`, `\u001F`, `\u0008`, `\u000a`, `\u0041`, `\u00e9`, `\u00E9`, `\u20ac`,
		`\ud83d\ude00`, `\uD83D\uDE00`,
	}
	var s strings.Builder
	s.WriteByte('"')
	for range rng.IntN(4) {
		s.WriteString(pieces[rng.IntN(len(pieces))])
	}
	s.WriteByte('"')
	return s.String()
}

func genNumber(rng *rand.Rand) string {
	forms := []string{
		"0", "7", "-3", "42", "-0", "0.0", "-0.0", "1.50", "0.001", "123456789012345678901234567890",
		"1e2", "1E2", "1e+2", "1.5e-3", "-2.5E10", "0e0", "100", "3.14159",
	}
	return forms[rng.IntN(len(forms))]
}

// decodeJSONString decodes a JSON string literal (for the generator's key
// order).
func decodeJSONString(lit string) string {
	var s string
	if err := json.Unmarshal([]byte(lit), &s); err != nil {
		panic(err)
	}
	return s
}

// TestJSONStorage checks where JSON data goes (state_data, state_bytes or
// both) and that every form reads back byte for byte.
func TestJSONStorage(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	s, drv := openStore(t, pool, nil)
	inputs := []driver.Record{
		{Data: []byte(`{"balance":1500}`), Codec: "json"},                   // canonical
		{Data: []byte(`{"owner":"ann","balance":1500}`), Codec: "json"},     // JSONB reorders
		{Data: []byte("{\"balance\": 1500}\n"), Codec: "json"},              // spacing
		{Data: []byte(`{"a":1,"a":2}`), Codec: "json"},                      // duplicate key
		{Data: []byte(`{"balance":1500`), Codec: "json"},                    // not JSON
		{Data: []byte(`"\u0000"`), Codec: "json"},                           // JSON that JSONB refuses
		{Data: []byte(`{"balance":1500}`), Codec: "json", Compressed: true}, // compressed: opaque
		{Data: []byte(`{"balance":1500}`), Codec: "raw"},                    // another codec: opaque
		{Data: []byte{}, Codec: "json"},                                     // empty
		{Data: nil, Codec: "raw"},
	}
	for i, rec := range inputs {
		key := driver.Key{Kind: "Doc", ID: fmt.Sprint(i), Slot: "s"}
		want := bytes.Clone(rec.Data)
		if _, err := s.Save(ctx, key, rec, 0); err != nil {
			t.Fatalf("Save(%q): %v", want, err)
		}
		got, err := s.Load(ctx, key)
		if err != nil || !bytes.Equal(got.Data, want) {
			t.Errorf("Load of %q = %q, %v; want it byte for byte", want, got.Data, err)
		}
		var hasData, hasBytes bool
		if err := pool.QueryRow(ctx, `SELECT state_data IS NOT NULL, state_bytes IS NOT NULL FROM `+drv.names.qualified+
			` WHERE kind = $1 AND actor_id = $2 AND state_name = $3`, key.Kind, key.ID, key.Slot).Scan(&hasData, &hasBytes); err != nil {
			t.Fatal(err)
		}
		form := jsonBytesOnly
		if rec.Codec == "json" && !rec.Compressed {
			form = classifyJSON(want)
		}
		wantData, wantBytes := form != jsonBytesOnly, form != jsonCanonical
		if hasData != wantData || hasBytes != wantBytes {
			t.Errorf("%q (codec %s, compressed %v): state_data set %v, state_bytes set %v; want %v, %v",
				want, rec.Codec, rec.Compressed, hasData, hasBytes, wantData, wantBytes)
		}
	}
}

func FuzzClassifyJSON(f *testing.F) {
	for _, tt := range jsonCases {
		f.Add([]byte(tt.data))
	}
	// The server check runs when the server is reachable; the properties
	// that need no server run anyway (unless servers are required).
	var pool *pgxpool.Pool
	if testenv.Required() || reachable() {
		pool = testPool(f)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := classifyJSON(data)
		if got != jsonBytesOnly && !json.Valid(data) {
			t.Fatalf("classifyJSON(%q) = %v for invalid JSON", data, got)
		}
		if got == jsonCanonical {
			var c bytes.Buffer
			if err := json.Compact(&c, data); err != nil || !bytes.Equal(c.Bytes(), data) {
				t.Fatalf("classifyJSON(%q) = canonical, but it has insignificant space", data)
			}
		}
		if json.Valid(data) {
			var c bytes.Buffer
			if err := json.Compact(&c, data); err != nil {
				t.Fatal(err)
			}
			if got := compactJSONB(data); !bytes.Equal(got, c.Bytes()) {
				t.Fatalf("compactJSONB(%q) = %q, json.Compact gives %q", data, got, c.Bytes())
			}
		}
		if pool != nil {
			checkAgainstServer(t, pool, data, false)
		}
	})
}

// reachable reports whether the test server answers.
func reachable() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testenv.PostgresURL)
	if err != nil {
		return false
	}
	conn.Close(ctx)
	return true
}
