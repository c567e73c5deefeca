package mongodb

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/quarkgo/quark/persistence"
)

// indexRetries bounds how often CreateSchema runs createIndexes again
// after an error that a concurrent creation of the same collection or index
// can cause.
const indexRetries = 5

// raceCodes are the server error codes concurrent createIndexes commands on
// one new collection can give each other; the command is run again.
var raceCodes = map[int]bool{
	48:    true, // NamespaceExists: another creator made the collection first
	112:   true, // WriteConflict
	276:   true, // IndexBuildAborted
	11000: true, // DuplicateKey in the server's catalog (FerretDB)
}

// CreateSchema creates, if they do not exist, the collection of the store
// that opts describes and its indexes:
//
//   - TTLIndexName, {purgeAt: 1} with expireAfterSeconds 0, so that
//     MongoDB's TTL monitor deletes a tombstone, or an expired record, once
//     the tombstone retention has passed since the delete or the expiry
//     (unless Options.NoTTLIndex; see Purge);
//   - KindIndexName, {kind: 1, slot: 1}, for queries over the actors of
//     one kind.
//
// It is one createIndexes command, a no-op when the indexes exist, so it is
// safe to call repeatedly and from several processes at once (errors that
// concurrent creators can cause each other are retried). An index of the
// same name with other options fails with an error, as does a server
// without TTL indexes (FerretDB v1: set Options.NoTTLIndex). Invalid names
// give an error matching persistence.ErrInvalidArgument; the context's own
// error is returned as it is.
func CreateSchema(ctx context.Context, client *mongo.Client, opts *Options) error {
	o, err := check(client, opts, "create schema")
	if err != nil {
		return err
	}
	return createSchema(ctx, client, &o)
}

// createSchema runs CreateSchema with o, which has its defaults.
func createSchema(ctx context.Context, client *mongo.Client, o *Options) error {
	models := []mongo.IndexModel{{
		Keys:    bson.D{{Key: fieldKind, Value: 1}, {Key: fieldSlot, Value: 1}},
		Options: options.Index().SetName(KindIndexName),
	}}
	if !o.NoTTLIndex {
		models = append(models, mongo.IndexModel{
			Keys:    bson.D{{Key: fieldPurgeAt, Value: 1}},
			Options: options.Index().SetName(TTLIndexName).SetExpireAfterSeconds(0),
		})
	}
	indexes := client.Database(o.Database).Collection(o.Collection).Indexes()
	var err error
	for attempt := 1; ; attempt++ {
		_, err = indexes.CreateMany(ctx, models)
		var se mongo.ServerError
		if err == nil || attempt == indexRetries || !errors.As(err, &se) || !anyCode(se, raceCodes) {
			break
		}
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var se mongo.ServerError
	if !o.NoTTLIndex && errors.As(err, &se) && se.HasErrorCode(238) { // NotImplemented
		err = fmt.Errorf("%w (the server has no TTL indexes: set Options.NoTTLIndex, or quark_ttl_index=false in a URL)", err)
	}
	return &persistence.Error{Code: errorCode(err), Op: "create schema",
		Err: fmt.Errorf("mongodb: creating the indexes of %s.%s: %w", o.Database, o.Collection, err)}
}

// anyCode reports whether se carries one of codes.
func anyCode(se mongo.ServerError, codes map[int]bool) bool {
	for _, c := range se.ErrorCodes() {
		if codes[c] {
			return true
		}
	}
	return false
}

// Purge deletes, from the collection of the store that opts describes, the
// tombstones and expired records whose tombstone retention has passed by
// opts.Now (their purgeAt): what the TTL index does on MongoDB, for servers
// without TTL indexes (Options.NoTTLIndex, FerretDB v1). It returns how
// many documents it deleted. Live records are never touched: the filter
// {purgeAt: {$lte: now}} matches only documents whose retention has
// passed, and MongoDB evaluates it atomically per document, so a record
// re-created meanwhile is kept (FerretDB v1 does not apply filtered writes
// atomically; see the package documentation). Once purged, a key starts
// again from version 1. Run it periodically, for example daily; it is
// safe to run concurrently with the store and with itself. Invalid names
// give an error matching persistence.ErrInvalidArgument.
func Purge(ctx context.Context, client *mongo.Client, opts *Options) (int64, error) {
	o, err := check(client, opts, "purge")
	if err != nil {
		return 0, err
	}
	filter := bson.D{{Key: fieldPurgeAt, Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(o.Now())}}}}
	res, err := collection(client, &o).DeleteMany(ctx, filter)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, &persistence.Error{Code: errorCode(err), Op: "purge",
			Err: fmt.Errorf("mongodb: purging %s.%s: %w", o.Database, o.Collection, err)}
	}
	return res.DeletedCount, nil
}
