package testenv

// MongoURL is the MongoDB server the mongodb provider's tests use: by
// default the FerretDB (MongoDB wire protocol) that scripts/backends.sh
// starts. Point QUARK_TEST_MONGODB_URL at a real MongoDB to run the tests,
// the concurrent compare-and-set case included, against it.
var MongoURL = URL("QUARK_TEST_MONGODB_URL", "mongodb://127.0.0.1:27017/") // QUARK_TEST_MONGODB_URL
