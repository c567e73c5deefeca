package catalog

import (
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	var b budget
	t0 := time.Unix(0, 0)
	for i := 0; i < 3; i++ {
		if !b.spend(t0.Add(time.Duration(i)*time.Second), 3, time.Minute) {
			t.Fatalf("restart %d refused within a budget of 3", i+1)
		}
	}
	if b.spend(t0.Add(10*time.Second), 3, time.Minute) {
		t.Fatal("a 4th restart within the window was allowed")
	}
	if !b.spend(t0.Add(2*time.Minute), 3, time.Minute) {
		t.Fatal("restarts outside the window still counted")
	}
	if !(&budget{}).spend(t0, 0, 0) {
		t.Fatal("no limit refused")
	}
}
