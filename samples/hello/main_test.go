package main

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// TestHello runs the example twice in an empty directory: data/ is created,
// and the balance carries over.
func TestHello(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, want := range []string{"balance: 100\n", "balance: 200\n"} {
		if got := capture(t, main); got != want {
			t.Fatalf("printed %q, want %q", got, want)
		}
	}
}

func capture(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()
	fn()
	w.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
