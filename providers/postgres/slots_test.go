package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// bankAccount is the state of the seed's BankAccount example.
type bankAccount struct {
	Balance int64 `json:"balance"`
}

// slotsOf returns the slot set of one actor over store.
func slotsOf(t *testing.T, store *persistence.Store, kind, id string) *persistence.Slots {
	t.Helper()
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"postgres-db": store}, "postgres-db")
	if err != nil {
		t.Fatal(err)
	}
	return persistence.NewSlots(reg, kind, id)
}

// TestSeedJSONBQuery writes accounts through typed slots and runs the seed's
// query ("find all accounts with balance > 1000") on the table in SQL.
func TestSeedJSONBQuery(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	store, drv := openStore(t, pool, nil)
	balances := map[string]int64{"acc-1": 500, "acc-2": 1500, "acc-3": 1000, "acc-4": 25000, "acc-5": -7, "acc-6": 1001}
	for id, balance := range balances {
		slots := slotsOf(t, store, "BankAccount", id)
		acct := persistence.Declare[bankAccount](slots, "Account", persistence.Provider("postgres-db"))
		if err := slots.LoadAll(ctx); err != nil {
			t.Fatal(err)
		}
		acct.State().Balance = balance
		if err := acct.Save(ctx); err != nil {
			t.Fatalf("saving %s: %v", id, err)
		}
	}
	// Another kind with the same slot name and a big balance must not match.
	other := slotsOf(t, store, "SavingsAccount", "acc-2")
	sav := persistence.Declare[bankAccount](other, "Account")
	if err := other.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	sav.State().Balance = 99999
	if err := sav.Save(ctx); err != nil {
		t.Fatal(err)
	}

	// The seed's query, with the kind added.
	rows, err := pool.Query(ctx, `SELECT actor_id, (state_data->>'balance')::bigint AS balance
FROM `+drv.names.qualified+`
WHERE kind = 'BankAccount' AND state_name = 'Account'
  AND (state_data->>'balance')::bigint > 1000
ORDER BY actor_id`)
	if err != nil {
		t.Fatal(err)
	}
	type hit struct {
		ID      string
		Balance int64
	}
	hits, err := pgx.CollectRows(rows, pgx.RowToStructByPos[hit])
	if err != nil {
		t.Fatal(err)
	}
	want := []hit{{"acc-2", 1500}, {"acc-4", 25000}, {"acc-6", 1001}}
	if !slices.Equal(hits, want) {
		t.Errorf("accounts with balance > 1000 = %v, want %v", hits, want)
	}

	// A JSONB containment query uses the same column.
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+drv.names.qualified+` WHERE state_data @> '{"balance": 500}'`).
		Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("state_data @> {\"balance\": 500} matched %d rows, want 1", n)
	}
}

// TestCorruptRecordNamesKeyAndIsKept writes rows by hand that the slot cannot
// decode and checks that loading reports a typed error naming the key and
// leaves the row as it was.
func TestCorruptRecordNamesKeyAndIsKept(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	store, drv := openStore(t, pool, nil)
	table := drv.names.qualified
	rows := []struct {
		id, data, codec string
		why             string
	}{
		{"wrong-shape", `"a string, not an object"`, "json", "cannot unmarshal string"},
		{"wrong-type", `{"balance": "lots"}`, "json", "cannot unmarshal string"},
		{"unknown-codec", `{"balance": 5}`, "msgpack-v9", `codec "msgpack-v9"`},
	}
	for _, r := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (kind, actor_id, state_name, state_data, codec,
	schema_version, compressed, version, updated_at, checksum) VALUES ('BankAccount', $1, 'Account', $2, $3, 0, false, 7, now(), 0)`,
			r.id, r.data, r.codec); err != nil {
			t.Fatal(err)
		}
		// With the checksum of what the row holds, as a writer by hand
		// would compute it: the row is intact, only its contents do not fit
		// the slot.
		key := driver.Key{Kind: "BankAccount", ID: r.id, Slot: "Account"}
		rec, ok, err := drv.Get(ctx, key)
		if err != nil || !ok {
			t.Fatalf("%s: Get = %v, %v", r.id, ok, err)
		}
		if _, err := pool.Exec(ctx, `UPDATE `+table+` SET checksum = $2 WHERE kind = 'BankAccount' AND actor_id = $1`,
			r.id, int64(driver.Checksum(&rec))); err != nil {
			t.Fatal(err)
		}
	}
	rowText := func(id string) string {
		var s string
		if err := pool.QueryRow(ctx, `SELECT row_to_json(t)::text FROM `+table+` t WHERE kind = 'BankAccount' AND actor_id = $1`, id).
			Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, r := range rows {
		before := rowText(r.id)
		slots := slotsOf(t, store, "BankAccount", r.id)
		acct := persistence.Declare[bankAccount](slots, "Account")
		err := slots.LoadAll(ctx)
		var de *persistence.DecodeError
		wantKey := persistence.Key{Kind: "BankAccount", ID: r.id, Slot: "Account"}
		switch {
		case !errors.As(err, &de):
			t.Errorf("%s: LoadAll = %v, want a *persistence.DecodeError", r.id, err)
		case de.Key != wantKey:
			t.Errorf("%s: the decode error names %v, want %v", r.id, de.Key, wantKey)
		case !errors.Is(err, persistence.ErrCorrupt) || persistence.CodeOf(err) != persistence.Corrupt:
			t.Errorf("%s: %v does not match ErrCorrupt", r.id, err)
		case !containsAll(err.Error(), r.why, r.id):
			t.Errorf("%s: error %q should say %q and name the actor", r.id, err, r.why)
		}
		// Nothing writes the row: not a flush, not a save.
		if err := slots.Flush(ctx); err != nil {
			t.Errorf("%s: Flush of the unloaded slot: %v", r.id, err)
		}
		if err := acct.Save(ctx); err == nil {
			t.Errorf("%s: Save of a slot that failed to load succeeded", r.id)
		}
		if after := rowText(r.id); after != before {
			t.Errorf("%s: the row changed from %s to %s", r.id, before, after)
		}
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestCorruptRowsOfForeignTable reads rows no table created by InitSchema
// can hold (its CHECK constraints refuse them), in a table created by hand
// without the constraints: the driver reports them as corrupt, naming the
// key, instead of failing in another way or returning a bad record. A row
// whose checksum does not match its contents is reported the same way, by
// the persistence layer.
func TestCorruptRowsOfForeignTable(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	table := freshTable(t, pool)
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (kind TEXT, actor_id TEXT, state_name TEXT, state_data JSONB,
	state_bytes BYTEA, codec TEXT NOT NULL, schema_version BIGINT NOT NULL, compressed BOOLEAN NOT NULL,
	version BIGINT NOT NULL, updated_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ,
	checksum BIGINT NOT NULL DEFAULT 0, deleted BOOLEAN NOT NULL DEFAULT false,
	PRIMARY KEY (kind, actor_id, state_name))`); err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{
		"version-0":      `'{"a":1}', NULL, 'json', 0, false, 0, now()`,
		"schema-too-big": `'{"a":1}', NULL, 'json', 4294967296, false, 1, now()`,
		"infinite-time":  `'{"a":1}', NULL, 'json', 0, false, 1, 'infinity'`,
		"checksum-range": `'{"a":1}', NULL, 'json', 0, false, 1, now(), NULL, 4294967296`,
		"checksum-wrong": `'{"a":1}', NULL, 'json', 0, false, 1, now(), NULL, 12345`,
	}
	for id, values := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO `+table+` VALUES ('K', $1, 's', `+values+`)`, id); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, pool, &Options{Table: table, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id := range rows {
		key := persistence.Key{Kind: "K", ID: id, Slot: "s"}
		_, err := s.Load(ctx, key)
		var de *persistence.DecodeError
		if !errors.As(err, &de) || de.Key != key {
			t.Errorf("Load of row %s = %v, want a *persistence.DecodeError naming it", id, err)
		}
	}
	// A create over the version-0 row does not overwrite it.
	key := persistence.Key{Kind: "K", ID: "version-0", Slot: "s"}
	if _, err := s.Save(ctx, key, jsonRec(`{"b":2}`), 0); !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("Save(expected 0) over a row with version 0 = %v, want a conflict", err)
	}
	var data string
	if err := pool.QueryRow(ctx, `SELECT state_data::text FROM `+table+` WHERE actor_id = 'version-0'`).Scan(&data); err != nil || data != `{"a": 1}` {
		t.Errorf("the row now holds %s, %v", data, err)
	}
}
