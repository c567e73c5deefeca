package embedded

import (
	"bufio"
	"bytes"
	"context"
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

// journalCrashDirEnv tells a re-executed test binary to act as the journal
// crash child and where the database lives.
const journalCrashDirEnv = "QUARK_EMBEDDED_JOURNAL_CRASH_CHILD_DIR"

// crashEventData is what the child writes at position seq of stream id.
func crashEventData(id string, seq int64) string { return fmt.Sprintf("%s event %d", id, seq) }

// TestJournalCrashDurability kills an appending process with SIGKILL and
// checks that every append it acknowledged survived, whole, with the data
// written at each position. Each round re-executes this test binary as a
// child running TestJournalCrashChild: 16 goroutines append 1 to 3 events
// at a time to their own streams and print "ack <id> <last>" after each
// acknowledged append. After the run time the child is killed mid-write and
// the file is reopened: each stream must hold at least its acknowledged
// events (more only if an append's acknowledgement was cut off), every
// position the data written there, and no position beyond the stream's
// last. Later rounds continue on the file the earlier kills left.
func TestJournalCrashDurability(t *testing.T) {
	if os.Getenv(journalCrashDirEnv) != "" {
		return // this process is a crash child
	}
	dir := t.TempDir()
	acked := map[string]int64{}
	for round := range crashRounds {
		n := runJournalCrashChild(t, dir, acked)
		if n == 0 {
			t.Fatalf("round %d: the child acknowledged no append", round)
		}
		t.Logf("round %d: %d appends acknowledged before SIGKILL", round, n)
		checkAckedEvents(t, dir, acked)
	}
}

// runJournalCrashChild runs one child until it is killed and records the
// highest last position acknowledged per stream. It returns the number of
// acks.
func runJournalCrashChild(t *testing.T, dir string, acked map[string]int64) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalCrashChild$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), journalCrashDirEnv+"="+dir)
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
				continue
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

// checkAckedEvents reopens the file the killed child left and checks every
// stream against its acknowledged position.
func checkAckedEvents(t *testing.T, dir string, acked map[string]int64) {
	t.Helper()
	ctx := context.Background()
	j, err := OpenJournal(context.Background(), filepath.Join(dir, "quark.db"), &Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("reopening after the crash: %v", err)
	}
	defer j.Close()
	for id, want := range acked {
		s := driver.Stream{Kind: "Crash", ID: id}
		last, err := j.Last(ctx, s)
		if err != nil || last < want {
			t.Errorf("%s: acknowledged up to %d, Last = %d, %v: an acknowledged append was lost", id, want, last, err)
			continue
		}
		next := int64(1)
		err = j.Read(ctx, s, 1, 0, func(e *persistence.Event) error {
			if e.Seq != next || string(e.Data) != crashEventData(id, next) {
				return fmt.Errorf("position %d holds %q at %d", next, e.Data, e.Seq)
			}
			next++
			return nil
		})
		if err != nil || next != last+1 {
			t.Errorf("%s: Read ended at %d of %d: %v", id, next-1, last, err)
		}
	}
}

// TestJournalCrashChild is the child process of TestJournalCrashDurability;
// run on its own (without the environment variable) it does nothing.
func TestJournalCrashChild(t *testing.T) {
	dir := os.Getenv(journalCrashDirEnv)
	if dir == "" {
		return
	}
	ctx := context.Background()
	j, err := OpenJournal(context.Background(), filepath.Join(dir, "quark.db"), &Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("child: OpenJournal: %v", err)
	}
	defer j.Close()
	var outMu sync.Mutex
	ack := func(id string, last int64) {
		line := []byte(fmt.Sprintf("ack %s %d\n", id, last))
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := os.Stdout.Write(line); err != nil {
			panic(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute) // in case the parent never kills us
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			id := fmt.Sprint("w", w)
			s := driver.Stream{Kind: "Crash", ID: id}
			last, err := j.Last(ctx, s)
			if err != nil {
				t.Errorf("child: Last(%s): %v", id, err)
				return
			}
			for i := 0; time.Now().Before(deadline); i++ {
				evs := make([]driver.Event, 1+i%3)
				for k := range evs {
					evs[k] = driver.Event{Type: "Crashed", Codec: "text", Data: []byte(crashEventData(id, last+int64(k)+1))}
				}
				l, err := j.Append(ctx, s, evs, last)
				if err != nil {
					t.Errorf("child: Append(%s, %d): %v", id, last, err)
					return
				}
				ack(id, l)
				last = l
			}
		})
	}
	wg.Wait()
}
