package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// The journal benchmarks compare the provider (quark: persistence.Journal
// over this driver) with go-redis used directly on the same keys and
// bytes (raw), interleaved call by call (see interleave):
//
//   - append/streams=N: N goroutines each append one 100-byte event at a
//     time to their own stream. Raw runs the same script through the same
//     Script.Run with the envelope built in a reused buffer.
//   - replay: one goroutine reads a 100,000-event stream from the start.
//     Raw is one LRANGE 0 -1 of the whole list, without decoding.
//
// Run: go test -run '^$' -bench Journal -count 5 ./providers/redis/

func journalBenchEvent() driver.Event {
	return driver.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: benchData(), Time: time.Now()}
}

// quarkAppender returns, for one stream, a function that appends one
// event through the persistence layer.
func quarkAppender(ctx context.Context, j *persistence.Journal, s driver.Stream) func() error {
	events := []driver.Event{journalBenchEvent()}
	var last int64
	return func() error {
		l, err := j.Append(ctx, s, events, last)
		last = l
		return err
	}
}

// rawAppender is quarkAppender with go-redis alone: the same script,
// arguments and stored bytes.
func rawAppender(ctx context.Context, client goredis.UniversalClient, prefix string, s driver.Stream) func() error {
	key := []string{streamKey(prefix, s)}
	e := journalBenchEvent()
	buf := make([]byte, 0, 256)
	var last int64
	return func() error {
		buf = driver.AppendEvent(buf[:0], &e)
		res, err := appendScript.Run(ctx, client, key, strconv.FormatInt(last, 10), buf).Result()
		if err != nil {
			return err
		}
		if r, ok := res.([]any); !ok || len(r) != 2 || r[0] != int64(1) {
			return fmt.Errorf("raw append expecting %d: %v", last, res)
		}
		last++
		return nil
	}
}

func BenchmarkJournalInterleaved(b *testing.B) {
	for _, streams := range []int{1, 64} {
		b.Run(fmt.Sprintf("append/streams=%d", streams), func(b *testing.B) {
			client := connect(b)
			prefix := freshPrefix(b, client)
			j, err := OpenJournal(context.Background(), client, &Options{KeyPrefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var next atomic.Int64
			interleave(b, streams, "appends/s", func() [2]func() error {
				id := strconv.FormatInt(next.Add(1), 10)
				return [2]func() error{
					quarkAppender(ctx, j, driver.Stream{Kind: "Bench", ID: "quark-" + id}),
					rawAppender(ctx, client, prefix, driver.Stream{Kind: "Bench", ID: "raw-" + id}),
				}
			})
		})
	}
	b.Run("replay", func(b *testing.B) {
		client := connect(b)
		prefix := freshPrefix(b, client)
		j, err := OpenJournal(context.Background(), client, &Options{KeyPrefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		s := driver.Stream{Kind: "Bench", ID: "replay"}
		if err := storetest.FillStream(ctx, j, s, storetest.ReplayEvents); err != nil {
			b.Fatal(err)
		}
		key := streamKey(prefix, s)
		interleave(b, 1, "replays/s", func() [2]func() error {
			return [2]func() error{
				func() error {
					n := 0
					err := j.Read(ctx, s, 1, 0, func(*persistence.Event) error { n++; return nil })
					if err == nil && n != storetest.ReplayEvents {
						err = fmt.Errorf("replayed %d events", n)
					}
					return err
				},
				func() error {
					vals, err := client.LRange(ctx, key, 0, -1).Result()
					if err == nil && len(vals) != storetest.ReplayEvents {
						err = fmt.Errorf("LRANGE returned %d events", len(vals))
					}
					return err
				},
			}
		})
	})
}

// BenchmarkJournal runs the journal benchmarks every provider shares.
func BenchmarkJournal(b *testing.B) {
	storetest.RunJournalBenchmarks(b, newJournalHarness)
}
