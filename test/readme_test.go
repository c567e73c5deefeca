package test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExampleIsTheHelloSample: the README's first example is
// samples/hello/main.go (from its package clause on), so that it compiles,
// runs (samples/hello has a test) and needs the imports it shows.
func TestReadmeExampleIsTheHelloSample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```go\n")
	if !ok {
		t.Fatal("README.md has no Go example")
	}
	block, _, _ = strings.Cut(block, "```")
	src, err := os.ReadFile("../samples/hello/main.go")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(src), "package main\n")
	if i < 0 {
		t.Fatal("samples/hello/main.go has no package clause")
	}
	if want := string(src[i:]); block != want {
		t.Errorf("README.md's first Go block differs from samples/hello/main.go; it should read:\n%s", want)
	}
}
