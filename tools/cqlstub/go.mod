module github.com/quarkgo/quark/tools/cqlstub

go 1.26.0

require (
	github.com/datastax/go-cassandra-native-protocol v0.0.0-20240626123646-2abea740da8d
	github.com/gocql/gocql v1.7.0
	github.com/quarkgo/quark v0.0.0
)

require (
	github.com/golang/snappy v0.0.4 // indirect
	github.com/hailocab/go-hostpool v0.0.0-20160125115350-e80d13ce29ed // indirect
	gopkg.in/inf.v0 v0.9.1 // indirect
)

replace github.com/quarkgo/quark => ../..
