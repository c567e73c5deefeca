package testenv

// DynamoDBURL locates the DynamoDB test server (DynamoDB Local, started by
// scripts/backends.sh) as a store URL of providers/dynamodb without a table:
// tests create their own tables. Override it with QUARK_TEST_DYNAMODB_URL,
// e.g. "dynamodb:///?region=eu-west-1" for AWS itself (credentials from the
// environment; the tests create and delete tables named quark_test_*).
var DynamoDBURL = URL("QUARK_TEST_DYNAMODB_URL", "dynamodb://127.0.0.1:8000/?region=us-east-1")
