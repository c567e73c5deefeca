package storetest

import (
	"context"
	"testing"
)

// TestConformanceMapStore runs the suite against the test double, with and
// without the optional capabilities, so that the suite itself is exercised.
func TestConformanceMapStore(t *testing.T) {
	t.Run("plain", func(t *testing.T) { RunConformanceTests(t, maker(mapHarness{})) })
	t.Run("full", func(t *testing.T) { RunConformanceTests(t, maker(mapHarness{full: true})) })
}

// TestKnownLimits runs the suite against a store that loses writes, with
// every case declared a known limit: the test must pass, the failures only
// logged.
func TestKnownLimits(t *testing.T) {
	limits := make(map[string]string)
	for _, c := range conformanceCases() {
		limits[c.name] = "this store drops every third write"
	}
	RunConformanceTests(t, maker(mapHarness{bug: bugDropWrites, limits: limits}))
}

// runOne runs one case against h through a limitRecorder, invariant check
// included, and reports whether it failed.
func runOne(t *testing.T, h mapHarness, name string) bool {
	t.Helper()
	for _, c := range conformanceCases() {
		if c.name != name {
			continue
		}
		r := &limitRecorder{t: t, name: name, reason: "self-test"}
		e := newEnv(context.Background(), t, r, h, h.Capabilities())
		r.run(func() { c.run(r, e) })
		e.checkInvariants(r)
		return r.failed
	}
	t.Fatalf("no case %q", name)
	return false
}

// TestCasesCatchBugs checks that the cases fail against stores that break
// the contract, and pass against the same store without the bug.
func TestCasesCatchBugs(t *testing.T) {
	tests := []struct {
		bug   bugKind
		cases []string
	}{
		{bugNoCAS, []string{"CreateConflict", "UpdateConflict", "UpdateAbsent", "ConcurrentCreate", "ConcurrentCAS", "RandomOps"}},
		{bugDropWrites, []string{"VersionIncrementsOnSameData", "ConcurrentCAS", "RandomOps", "OddIDs"}},
		{bugReuseVersions, []string{"DeleteConditional", "VersionsNeverReused", "VersionsNeverReusedAfterExpiry", "ConcurrentDeleteAndStaleUpdate", "RandomOps", "BatchDelete", "Expired"}},
	}
	for _, tt := range tests {
		for _, name := range tt.cases {
			if !runOne(t, mapHarness{bug: tt.bug}, name) {
				t.Errorf("case %s passed against a store with bug %d", name, tt.bug)
			}
			if runOne(t, mapHarness{}, name) {
				t.Errorf("case %s failed against the correct store", name)
			}
		}
	}
}

func TestLimitRecorder(t *testing.T) {
	r := &limitRecorder{t: t, name: "X", reason: "why"}
	reached := false
	r.run(func() {
		r.Fatalf("stop here")
		reached = true
	})
	if !r.failed || reached {
		t.Errorf("after Fatalf: failed %v, body went on %v; want true, false", r.failed, reached)
	}

	r = &limitRecorder{t: t, name: "X", reason: "why"}
	r.run(func() { panic("boom") })
	if !r.failed {
		t.Errorf("a panic was not recorded as a failure")
	}

	r = &limitRecorder{t: t, name: "X", reason: "why"}
	r.run(func() { r.Logf("fine") })
	if r.failed {
		t.Errorf("a passing body was recorded as failed")
	}
}
