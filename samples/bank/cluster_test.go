package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestClusterDemo runs the -cluster demo: accounts open, move when a
// member stops, and the total stays the same. Like runtime's cluster
// tests, it runs in a child process: protoactor's remote sets gRPC's
// process-wide logger whenever a member starts, which races with gRPC
// goroutines left by an earlier run in the same process (-count).
func TestClusterDemo(t *testing.T) {
	if os.Getenv("QUARK_BANK_CLUSTER_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "QUARK_BANK_CLUSTER_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
			t.Fatalf("child process: %v\n%s", err, out)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, config{store: "memory", cluster: 3}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	t.Log(s)
	for _, want := range []string{"stopping member-3", "8 transfers (before): done", "8 transfers (after): done"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := strings.Count(s, "total 800.00"); n != 2 {
		t.Errorf("the total is 800.00 %d times, want 2 (before and after the member stops)", n)
	}
	after := s[strings.Index(s, "stopping member-3"):]
	if strings.Contains(after, "on member-3") {
		t.Error("an account still runs on the stopped member")
	}
	if err := run(ctx, config{store: "memory", cluster: 1}, &out); err == nil {
		t.Error("-cluster 1 accepted")
	}
	if err := run(ctx, config{store: "memory", cluster: 2, chaos: true}, &out); err == nil {
		t.Error("-cluster with -chaos accepted")
	}
}
