package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkUpdate measures conditional updates through go-mssqldb against
// an in-process stand-in: client and server on one machine, so the figure
// is the cost of the round trip, not of a database.
func BenchmarkUpdate(b *testing.B) {
	_, dsn := startServer(b)
	db := openDB(b, dsn)
	db.SetMaxOpenConns(16)
	ctx := context.Background()
	st := statements(b, "dbo", "bench")
	initTable(b, db, st)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprint(next.Add(1))
		var version int64
		for pb.Next() {
			applied, _, err := write(ctx, db, st, "Bench", id, "s", `{"n":1}`, nil, version, time.Now(), nil)
			if err != nil || applied != 1 {
				b.Fatalf("write = %d, %v", applied, err)
			}
			version++
		}
	})
}
