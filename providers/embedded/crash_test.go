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

// TestCrashDurability kills a writing process with SIGKILL and checks that
// every save it acknowledged survived. Each round re-executes this test
// binary as a child running TestCrashChild: 16 goroutines save their own
// keys as fast as they can and print "ack <id> <version>" after each
// acknowledged save. After the run time the child is killed mid-write, the
// database is reopened, and every acknowledged version must be stored (or a
// later one, whose acknowledgement the kill cut off), with the data that
// version wrote. Later rounds continue on the file the earlier kills left.
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
	s, err := Open(filepath.Join(dir, "quark.db"), &Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("reopening after the crash: %v", err)
	}
	defer s.Close()
	for id, v := range acked {
		got, err := s.Load(ctx, crashKey(id))
		switch {
		case err != nil:
			t.Errorf("%s: acknowledged version %d, then Load: %v", id, v, err)
		case got.Version < v:
			t.Errorf("%s: acknowledged version %d, stored version %d: an acknowledged save was lost", id, v, got.Version)
		case string(got.Data) != crashData(id, got.Version):
			t.Errorf("%s: stored version %d holds %q, want %q", id, got.Version, got.Data, crashData(id, got.Version))
		}
	}
}

// TestCrashChild is the child process of TestCrashDurability; run on its
// own (without the environment variable) it does nothing.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	ctx := context.Background()
	s, err := Open(filepath.Join(dir, "quark.db"), &Options{Timeout: 10 * time.Second})
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
			var version int64
			switch cur, err := s.Load(ctx, crashKey(id)); {
			case err == nil:
				version = cur.Version
			case !errors.Is(err, persistence.ErrNotFound):
				t.Errorf("child: Load(%s): %v", id, err)
				return
			}
			for time.Now().Before(deadline) {
				r := driver.Record{Data: []byte(crashData(id, version+1)), Codec: "text", Schema: 1}
				v, err := s.Save(ctx, crashKey(id), r, version)
				if err != nil {
					t.Errorf("child: Save(%s, %d): %v", id, version, err)
					return
				}
				ack(id, v)
				version = v
			}
		}()
	}
	wg.Wait()
}
