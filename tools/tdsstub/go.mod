module github.com/quarkgo/quark/tools/tdsstub

go 1.26.0

require (
	github.com/microsoft/go-mssqldb v1.11.2
	github.com/quarkgo/quark v0.0.0
)

require (
	github.com/golang-sql/civil v0.0.0-20220223132316-b832511892a9 // indirect
	github.com/golang-sql/sqlexp v0.1.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/shopspring/decimal v1.4.0 // indirect
	golang.org/x/crypto v0.55.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

replace github.com/quarkgo/quark => ../..
