package embedded

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// crashDirEnv tells a re-executed test binary to act as the crash child and
// where the database lives.
const crashDirEnv = "QUARK_EMBEDDED_CRASH_CHILD_DIR"

const (
	crashWriters = 16
	crashRounds  = 3
	crashRunTime = 1500 * time.Millisecond // deliberate run time before the kill
)

func crashKey(id string) driver.Key { return driver.Key{Kind: "Crash", ID: id, Slot: "state"} }

// crashData is what the child writes at version v of key id, so that the
// parent can check that a stored version carries that version's data.
func crashData(id string, v int64) string { return fmt.Sprintf("%s wrote v%d", id, v) }

// crashDeleteEvery is how often (in saves) a child's writer deletes its
// record and creates it again, which must continue its versions.
const crashDeleteEvery = 8

// crashState reads what the store holds under the key of id, below the
// persistence layer: the record or the tombstone (then tombstone is true),
// and whether there is either.
func crashState(s *persistence.Store, id string) (rec driver.Record, tombstone, ok bool, err error) {
	err = s.Driver().(*store).db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketName).Get([]byte(driver.EncodeKey(crashKey(id))))
		if v == nil {
			return nil
		}
		var derr error
		rec, tombstone, derr = decode(v)
		rec.Data = bytes.Clone(rec.Data)
		ok = derr == nil
		return derr
	})
	return rec, tombstone, ok, err
}

// TestCrashDurability kills a writing process with SIGKILL and checks that
// every save it acknowledged survived. Each round re-executes this test
// binary as a child running TestCrashChild: 16 goroutines save their own
// keys as fast as they can and print "ack <id> <version>" after each
// acknowledged save; every crashDeleteEvery saves a goroutine deletes its
// record and creates it again, at the next version. After the run time the
// child is killed mid-write, the database is reopened, and every
// acknowledged version must be stored (or a later one, whose
// acknowledgement the kill cut off), with the data that version wrote, or
// a tombstone of at least that version if the kill fell between a delete
// and the create after it. Later rounds continue on the file the earlier
// kills left, and their creates must continue the versions too.
func TestCrashDurability(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		return // this process is a crash child
	}
	dir := t.TempDir()
	acked := map[string]int64{}
	for round := range crashRounds {
		n := runCrashChild(t, dir, acked)
		if n == 0 {
			t.Fatalf("round %d: the child acknowledged no save", round)
		}
		t.Logf("round %d: %d saves acknowledged before SIGKILL", round, n)
		checkAcked(t, dir, acked)
	}
}

// runCrashChild runs one child until it is killed and records the highest
// version acknowledged per key in acked. It returns the number of acks.
func runCrashChild(t *testing.T, dir string, acked map[string]int64) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acks := 0
	started := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		first := true
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue // the test framework's own output
			}
			v, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				readDone <- fmt.Errorf("bad ack line %q", sc.Text())
				return
			}
			mu.Lock()
			acked[f[1]] = max(acked[f[1]], v)
			acks++
			mu.Unlock()
			if first {
				close(started)
				first = false
			}
		}
		readDone <- sc.Err()
	}()

	select {
	case <-started:
		time.Sleep(crashRunTime) // the deliberate run time before the kill
	case err := <-readDone:
		_ = cmd.Wait()
		t.Fatalf("the child stopped before acknowledging anything (%v); its stderr:\n%s", err, stderr.String())
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-readDone
		_ = cmd.Wait()
		t.Fatalf("the child acknowledged nothing in a minute; its stderr:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing the child: %v", err)
	}
	// Every line written before the kill is in the pipe: read to the end.
	if err := <-readDone; err != nil {
		t.Fatalf("reading the child's output: %v", err)
	}
	err = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, not by SIGKILL; its stderr:\n%s", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	return acks
}

// checkAcked reopens the database the killed child left and checks every
// acknowledged save.
func checkAcked(t *testing.T, dir string, acked map[string]int64) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(context.Background(), filepath.Join(dir, "quark.db"), &Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("reopening after the crash: %v", err)
	}
	defer s.Close()
	tombstones := 0
	for id, v := range acked {
		got, tombstone, ok, err := crashState(s, id)
		if tombstone {
			tombstones++
		}
		switch {
		case err != nil || !ok:
			t.Errorf("%s: acknowledged version %d, then nothing stored (%v)", id, v, err)
		case got.Version < v:
			t.Errorf("%s: acknowledged version %d, stored version %d (tombstone %v): an acknowledged save was lost", id, v, got.Version, tombstone)
		case tombstone:
			// Killed between a delete and the create after it.
			if _, err := s.Load(ctx, crashKey(id)); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("%s: Load of a tombstone = %v, want ErrNotFound", id, err)
			}
		case string(got.Data) != crashData(id, got.Version):
			t.Errorf("%s: stored version %d holds %q, want %q", id, got.Version, got.Data, crashData(id, got.Version))
		default:
			if loaded, err := s.Load(ctx, crashKey(id)); err != nil || loaded.Version != got.Version {
				t.Errorf("%s: Load = version %d, %v; want %d", id, loaded.Version, err, got.Version)
			}
		}
	}
	t.Logf("%d of %d keys were left as tombstones by the kill", tombstones, len(acked))
}

// TestCrashChild is the child process of TestCrashDurability; run on its
// own (without the environment variable) it does nothing.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	ctx := context.Background()
	s, err := Open(context.Background(), filepath.Join(dir, "quark.db"), &Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("child: Open: %v", err)
	}
	defer s.Close()
	var outMu sync.Mutex
	ack := func(id string, v int64) {
		line := []byte(fmt.Sprintf("ack %s %d\n", id, v))
		outMu.Lock()
		defer outMu.Unlock()
		// os.Stdout is unbuffered: one write per line, flushed at once.
		if _, err := os.Stdout.Write(line); err != nil {
			panic(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute) // in case the parent never kills us
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("w", w)
			// Where an earlier child left the key: a record, a tombstone,
			// or nothing.
			cur, tombstone, ok, err := crashState(s, id)
			if err != nil {
				t.Errorf("child: reading %s: %v", id, err)
				return
			}
			version, live := cur.Version, ok && !tombstone
			for n := 1; time.Now().Before(deadline); n++ {
				if live && n%crashDeleteEvery == 0 {
					if err := s.Delete(ctx, crashKey(id), version); err != nil {
						t.Errorf("child: Delete(%s, %d): %v", id, version, err)
						return
					}
					live = false
				}
				expected := version
				if !live {
					expected = 0 // a create, which continues from the tombstone
				}
				r := driver.Record{Data: []byte(crashData(id, version+1)), Codec: "text", Schema: 1}
				v, err := s.Save(ctx, crashKey(id), r, expected)
				if err != nil || v != version+1 {
					t.Errorf("child: Save(%s, %d) = %d, %v; want version %d", id, expected, v, err, version+1)
					return
				}
				ack(id, v)
				version, live = v, true
			}
		}()
	}
	wg.Wait()
}
