package mongodb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// store implements driver.Store on one collection.
type store struct {
	client    *mongo.Client
	owned     bool // opened from a URL: Close disconnects the client
	coll      *mongo.Collection
	now       func() time.Time
	maxBytes  int
	retention time.Duration
	nativeTTL bool
}

var (
	_ driver.Store     = (*store)(nil)
	_ driver.Limiter   = (*store)(nil)
	_ driver.NativeTTL = (*store)(nil)
)

// Open returns a Store over the collection Options.Collection of the
// database Options.Database, through client. The caller owns client: the
// Store's Close leaves it connected. Names and options are validated first
// (errors match persistence.ErrInvalidArgument); then, with
// Options.CreateSchema, CreateSchema runs. Otherwise Open does no I/O, and
// an unreachable server shows at the first operation, as
// persistence.ErrUnavailable.
func Open(ctx context.Context, client *mongo.Client, opts *Options) (*persistence.Store, error) {
	o, err := check(client, opts, "open")
	if err == nil && o.CreateSchema {
		err = createSchema(ctx, client, &o)
	}
	if err != nil {
		return nil, err
	}
	return wrap(newStore(client, &o)), nil
}

// check validates client and opts for the operation op and returns the
// options with their defaults.
func check(client *mongo.Client, opts *Options, op string) (Options, error) {
	if client == nil {
		return Options{}, &persistence.Error{Code: persistence.InvalidArgument, Op: op,
			Err: fmt.Errorf("%w: nil client", errInvalid)}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return o, &persistence.Error{Code: persistence.InvalidArgument, Op: op, Err: err}
	}
	return o, nil
}

// newStore returns the driver over client with o, which has its defaults.
func newStore(client *mongo.Client, o *Options) *store {
	return &store{
		client:    client,
		coll:      collection(client, o),
		now:       o.Now,
		maxBytes:  o.MaxRecordBytes,
		retention: o.TombstoneRetention,
		nativeTTL: !o.NoTTLIndex,
	}
}

// wrap returns the portable Store over s.
func wrap(s *store) *persistence.Store {
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now})
}

// collection returns the store's collection of client, with reads from the
// primary and the configured read and write concerns.
func collection(client *mongo.Client, o *Options) *mongo.Collection {
	co := options.Collection().SetReadPreference(readpref.Primary())
	if o.ReadConcern != nil {
		co.SetReadConcern(o.ReadConcern)
	}
	if o.WriteConcern != nil {
		co.SetWriteConcern(o.WriteConcern)
	}
	return client.Database(o.Database).Collection(o.Collection, co)
}

// maxRaceRetries bounds how often a conditional write runs again when it
// did not apply although the document read afterwards has the expected
// version (it changed between the two); then the conflict reports the
// actual version as unknown (-1).
const maxRaceRetries = 3

// Get implements driver.Store with one FindOne by _id.
func (s *store) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	return s.get(ctx, driver.EncodeKey(key), s.now())
}

// get reads and decodes the document id: the live record, or ok false. A
// document that is not a valid record is reported with driver.NewCorrupt.
func (s *store) get(ctx context.Context, id string, now time.Time) (driver.Record, bool, error) {
	rec, live, _, err := s.read(ctx, id, now)
	if err != nil || !live {
		return driver.Record{}, false, err
	}
	return rec, true, nil
}

// read reads and decodes the document id: whether there is one (found),
// and whether it is live. A tombstone or an expired record gives a record
// holding only its version. A document that is not a valid record is
// reported with driver.NewCorrupt.
func (s *store) read(ctx context.Context, id string, now time.Time) (rec driver.Record, live, found bool, err error) {
	buf := getBuf()
	filter := idFilter((*buf)[:0], id)
	*buf = filter
	doc, err := s.coll.FindOne(ctx, bson.Raw(filter)).Raw()
	putBuf(buf)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return driver.Record{}, false, false, nil
	case err != nil:
		return driver.Record{}, false, false, err
	}
	rec, live, err = decodeDocument(doc, now)
	if err != nil {
		return driver.Record{}, false, false, driver.NewCorrupt(err)
	}
	return rec, live, true, nil
}

// checkRecord refuses, before any I/O, a record the store cannot take.
func (s *store) checkRecord(rec *driver.Record, expected int64) error {
	switch {
	case len(rec.Data) > s.maxBytes:
		return fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, len(rec.Data), s.maxBytes)
	case len(rec.Codec) > driver.MaxCodecLen || !utf8.ValidString(rec.Codec):
		return fmt.Errorf("%w: codec id %q is not valid UTF-8 of at most %d bytes", errInvalid, rec.Codec, driver.MaxCodecLen)
	case expected < 0 || expected == math.MaxInt64:
		return fmt.Errorf("%w: expected version %d", errInvalid, expected)
	}
	return nil
}

// Put implements driver.Store. An update is a ReplaceOne whose filter
// matches only the live document at the expected version (see
// updateFilter), storing expected+1. A create (expected 0) is an InsertOne
// at version 1; if the _id exists and holds a tombstone or an expired
// record at version n, a ReplaceOne that matches only that very document
// (goneFilter) stores version n+1 over it. When nothing matched, the
// document is read to report the actual version (or to learn n).
//
// If the server refuses the document because of its BSON state (FerretDB
// v1 refuses nested arrays, for one), the write runs once more with the
// record as bytes only: the state is a copy for queries, the record must
// not depend on it.
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	if err := s.checkRecord(&rec, expected); err != nil {
		return 0, err
	}
	now := s.now()
	id := driver.EncodeKey(key)
	buf := getBuf()
	defer putBuf(buf)
	withState := true
	build := func(version int64) ([]byte, stateForm) {
		doc, form := appendDocument((*buf)[:0], id, key, &rec, version, now, withState, s.retention)
		*buf = doc
		return doc, form
	}
	for {
		var v int64
		var form stateForm
		var err error
		if expected == 0 {
			v, form, err = s.create(ctx, id, build, now)
		} else {
			doc, f := build(expected + 1)
			v, form, err = expected+1, f, s.update(ctx, id, doc, expected, now)
		}
		if withState && form != formBytes && stateRefused(err) {
			withState = false
			continue
		}
		if err != nil {
			return 0, err
		}
		return v, nil
	}
}

// stateRefused reports whether err is the server's refusal of a document
// it cannot store: a malformed or oversized value, as opposed to a failure
// of the write itself.
func stateRefused(err error) bool {
	var we mongo.WriteException
	if !errors.As(err, &we) || len(we.WriteErrors) == 0 {
		return false
	}
	for _, e := range we.WriteErrors {
		if !invalidCodes[e.Code] && !tooLargeCodes[e.Code] {
			return false
		}
	}
	return true
}

// create writes the document build returns for the version it gets: 1
// with an InsertOne, or n+1 with a ReplaceOne over the tombstone or expired
// record at version n that the _id holds. It returns the version written
// and the form of the last document built.
func (s *store) create(ctx context.Context, id string, build func(version int64) ([]byte, stateForm),
	now time.Time) (int64, stateForm, error) {
	var last int64 // the version of the tombstone or expired record the _id holds, 0: nothing
	for attempt := 1; ; attempt++ {
		doc, form := build(last + 1)
		if last == 0 {
			res, err := s.coll.InsertOne(ctx, bson.Raw(doc))
			switch {
			case err == nil && !res.Acknowledged:
				return 0, form, errUnacknowledged
			case err == nil:
				return 1, form, nil
			case !mongo.IsDuplicateKeyError(err):
				return 0, form, err
			}
		} else {
			res, err := s.coll.ReplaceOne(ctx, bson.Raw(goneFilter(nil, id, last, now)), bson.Raw(doc))
			switch {
			case err != nil:
				return 0, form, err
			case !res.Acknowledged:
				return 0, form, errUnacknowledged
			case res.MatchedCount == 1:
				return last + 1, form, nil
			}
		}
		// The _id holds something else than assumed: read it.
		rec, live, found, err := s.read(ctx, id, now)
		switch {
		case err != nil:
			return 0, form, err
		case live:
			return 0, form, driver.NewConflict(rec.Version)
		case attempt == maxRaceRetries || (found && rec.Version == last):
			// The key keeps changing, or the server and the store disagree
			// about the document.
			return 0, form, driver.NewConflict(-1)
		case found:
			last = rec.Version // a tombstone or an expired record: continue from it
		default:
			last = 0 // purged, or never there: insert
		}
	}
}

// update replaces the live document id at version expected with doc.
func (s *store) update(ctx context.Context, id string, doc []byte, expected int64, now time.Time) error {
	buf := getBuf()
	defer putBuf(buf)
	filter := updateFilter((*buf)[:0], id, expected, now)
	*buf = filter
	for attempt := 1; ; attempt++ {
		res, err := s.coll.ReplaceOne(ctx, bson.Raw(filter), bson.Raw(doc))
		switch {
		case err != nil:
			return err
		case !res.Acknowledged:
			return errUnacknowledged
		case res.MatchedCount == 1:
			return nil
		}
		if err := s.mismatch(ctx, id, expected, now, attempt); err != errRace {
			return err
		}
	}
}

// errRace is mismatch's answer when the document read has the expected
// version: the write should run again.
var errRace = errors.New("mongodb: the document changed between the write and the read")

// mismatch explains a conditional write that matched no document: the
// conflict with the actual version, the damaged document, or errRace.
func (s *store) mismatch(ctx context.Context, id string, expected int64, now time.Time, attempt int) error {
	rec, found, err := s.get(ctx, id, now)
	switch {
	case err != nil:
		return err
	case !found:
		return driver.NewConflict(0)
	case rec.Version != expected:
		return driver.NewConflict(rec.Version)
	case attempt == maxRaceRetries:
		return driver.NewConflict(-1)
	}
	return errRace
}

// Delete implements driver.Store. Expecting 0, it reads the document: only
// no document, a tombstone or an expired one succeeds, changing nothing.
// Otherwise it is a ReplaceOne with the filter of an update that replaces
// the live record by its tombstone, which keeps the version (see
// Options.TombstoneRetention).
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	if expected < 0 {
		return fmt.Errorf("%w: expected version %d", errInvalid, expected)
	}
	now := s.now()
	id := driver.EncodeKey(key)
	if expected == 0 {
		rec, found, err := s.get(ctx, id, now)
		switch {
		case err != nil:
			return err
		case found:
			return driver.NewConflict(rec.Version)
		}
		return nil
	}
	buf := getBuf()
	defer putBuf(buf)
	filter := updateFilter((*buf)[:0], id, expected, now)
	*buf = filter
	tombstone := appendTombstone(make([]byte, 0, 128), id, expected, now, s.retention)
	for attempt := 1; ; attempt++ {
		res, err := s.coll.ReplaceOne(ctx, bson.Raw(filter), bson.Raw(tombstone))
		switch {
		case err != nil:
			return err
		case !res.Acknowledged:
			return errUnacknowledged
		case res.MatchedCount == 1:
			return nil
		}
		if err := s.mismatch(ctx, id, expected, now, attempt); err != errRace {
			return err
		}
	}
}

// MaxRecordBytes implements driver.Limiter.
func (s *store) MaxRecordBytes() int { return s.maxBytes }

// HasNativeTTL implements driver.NativeTTL: MongoDB's TTL monitor removes
// expired documents, unless Options.NoTTLIndex left the TTL index out.
func (s *store) HasNativeTTL() bool { return s.nativeTTL }

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }

// disconnectTimeout bounds how long Close waits for a client it owns to
// finish its operations and disconnect.
const disconnectTimeout = 10 * time.Second

// Close implements driver.Store. It disconnects the client only if the
// store opened it (from a URL); an injected client stays connected.
func (s *store) Close() error {
	if !s.owned {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), disconnectTimeout)
	defer cancel()
	return s.client.Disconnect(ctx)
}

// idFilter appends the filter {_id: id}.
func idFilter(b []byte, id string) []byte {
	b, start := beginDoc(b)
	b = appendString(b, fieldID, id)
	return endDoc(b, start)
}

// goneFilter appends a filter matching the document id only if it is the
// tombstone or the expired record at version, at now:
//
//	{_id: id, version: version, $or: [{deleted: true}, {expiresAtNs: {$lte: now}}]}
func goneFilter(b []byte, id string, version int64, now time.Time) []byte {
	b, start := beginDoc(b)
	b = appendString(b, fieldID, id)
	b = appendInt64(b, fieldVersion, version)
	b = append(b, bsonArray)
	b = append(b, "$or\x00"...)
	b, arr := beginDoc(b)
	b, alt := beginSubdoc(b, "0")
	b = appendBool(b, fieldDeleted, true)
	b = endDoc(b, alt)
	b, alt = beginSubdoc(b, "1")
	b, sub := beginSubdoc(b, fieldExpiresAtNs)
	b = appendInt64(b, "$lte", now.UnixNano())
	b = endDoc(b, sub)
	b = endDoc(b, alt)
	b = endDoc(b, arr)
	return endDoc(b, start)
}

// updateFilter appends the filter of a conditional update or delete. It
// matches the document id only if it is live at now, at version expected,
// and has the fields a record needs with the right types, so that a write
// never replaces a document a read would report as damaged:
//
//	{_id: id, version: expected, expiresAtNs: {$gt: now},
//	 codec: {$type: "string"}, schema: {$gte: 0, $lte: 4294967295},
//	 compressed: {$type: "bool"}, updatedAtNs: {$type: "number"},
//	 deleted: {$exists: false}, checksum: {$gte: 0, $lte: 4294967295},
//	 $or: [{data: {$type: "binData"}}, {data: {$exists: false}, state: {$exists: true}}]}
//
// A tombstone never matches (nor would a damaged one with a record's
// fields).
//
// (Damage it cannot see, such as a state with no JSON form, is overwritten
// only by a writer that read the expected version before the damage.)
func updateFilter(b []byte, id string, expected int64, now time.Time) []byte {
	b, start := beginDoc(b)
	b = appendString(b, fieldID, id)
	b = appendInt64(b, fieldVersion, expected)
	b, sub := beginSubdoc(b, fieldExpiresAtNs)
	b = appendInt64(b, "$gt", now.UnixNano())
	b = endDoc(b, sub)
	b = appendTypeCheck(b, fieldCodec, "string")
	b, sub = beginSubdoc(b, fieldSchema)
	b = appendInt64(b, "$gte", 0)
	b = appendInt64(b, "$lte", math.MaxUint32)
	b = endDoc(b, sub)
	b = appendTypeCheck(b, fieldCompressed, "bool")
	b = appendTypeCheck(b, fieldUpdatedAtNs, "number")
	b = appendExists(b, fieldDeleted, false)
	b, sub = beginSubdoc(b, fieldChecksum)
	b = appendInt64(b, "$gte", 0)
	b = appendInt64(b, "$lte", math.MaxUint32)
	b = endDoc(b, sub)
	b = append(b, bsonArray)
	b = append(b, "$or\x00"...)
	b, arr := beginDoc(b)
	b, alt := beginSubdoc(b, "0")
	b = appendTypeCheck(b, fieldData, "binData")
	b = endDoc(b, alt)
	b, alt = beginSubdoc(b, "1")
	b = appendExists(b, fieldData, false)
	b = appendExists(b, fieldState, true)
	b = endDoc(b, alt)
	b = endDoc(b, arr)
	return endDoc(b, start)
}

// appendTypeCheck appends name: {$type: alias}.
func appendTypeCheck(b []byte, name, alias string) []byte {
	b, sub := beginSubdoc(b, name)
	b = appendString(b, "$type", alias)
	return endDoc(b, sub)
}

// appendExists appends name: {$exists: exists}.
func appendExists(b []byte, name string, exists bool) []byte {
	b, sub := beginSubdoc(b, name)
	b = appendBool(b, "$exists", exists)
	return endDoc(b, sub)
}
