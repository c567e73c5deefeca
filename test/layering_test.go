package test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/quarkgo/quark"

// rule forbids packages matching from to depend, directly or not, on
// packages matching any of the forbidden prefixes. A prefix ending in "/"
// matches every package below it; "!std" matches every non-standard package
// outside the module (third-party code).
type rule struct {
	from      string
	forbidden []string
	why       string
}

var rules = []rule{
	{"persistence/driver", []string{module + "/", "!std"}, "the provider SPI is standard library only"},
	{"persistence", []string{module + "/activation", module + "/runtime", module + "/providers/", module + "/internal/",
		module + "/eventsourcing", module + "/supervision", "github.com/asynkron/", "go.opentelemetry.io/"},
		"the portable layer knows no runtime, provider, engine or telemetry library (it reports through persistence.Observer)"},
	{"persistence/storetest", []string{module + "/providers/", module + "/runtime", module + "/activation"}, "the conformance suite imports no provider"},
	{"activation", []string{module + "/runtime", module + "/providers/", module + "/eventsourcing", module + "/internal/catalog",
		module + "/internal/protoengine", module + "/internal/protocluster", "github.com/asynkron/"},
		"activation holds the contracts users touch; the implementation (internal/catalog) builds on them, never the reverse"},
	{"internal/core", []string{module + "/activation", module + "/runtime", module + "/providers/", module + "/eventsourcing",
		module + "/internal/", "github.com/asynkron/"},
		"the hidden halves of activation's types sit below activation and know nothing of the implementation"},
	{"internal/catalog", []string{module + "/runtime", module + "/providers/", module + "/eventsourcing", module + "/internal/protoengine",
		module + "/internal/protocluster", "github.com/asynkron/"},
		"the catalog sees protoactor only through its Engine and Router interfaces"},
	{"internal/protocluster", []string{module + "/runtime", module + "/providers/", module + "/samples/", module + "/eventsourcing",
		module + "/internal/protoengine"},
		"the cluster glue sits under runtime, beside the engine: it knows activation and persistence, no provider"},
	{"providers/", []string{module + "/runtime", module + "/activation", module + "/eventsourcing", module + "/internal/protoengine",
		"github.com/asynkron/"}, "providers depend only on persistence, driver and their SDK"},
	{"runtime", []string{module + "/providers/", module + "/samples/"},
		"the host imports no provider but the two it links for WithStoreURL (embedded: and memory:); the application injects or imports the others"},
	{"runtime/runtimetest", []string{module + "/providers/", module + "/samples/", module + "/test/"},
		"the test kit works with any store the test injects"},
	{"supervision", []string{module + "/"}, "supervision strategies import no other package of ours but the shared backoff"},
	{"internal/backoff", []string{module + "/", "!std"}, "the one backoff is standard library only, so that every layer may use it"},
	{"internal/workpool", []string{module + "/", "!std"}, "the dispatcher pool is standard library only"},
	{"eventsourcing", []string{module + "/providers/", module + "/samples/"},
		"event sourcing builds on activation, runtime and persistence, never on a provider"},
}

// linkedByRuntime are the providers package runtime links, so that
// runtime.WithStoreURL opens embedded: and memory: URLs with no import.
// Runtime and the packages that import it may depend on them.
var linkedByRuntime = []string{module + "/providers/embedded", module + "/providers/memory", module + "/providers/internal/"}

// except lists, by rule, the packages (with their dependencies) allowed
// despite the rule's forbidden prefixes.
var except = map[string][]string{
	"runtime":             linkedByRuntime,
	"runtime/runtimetest": linkedByRuntime,
	"eventsourcing":       linkedByRuntime,
	"persistence":         {module + "/internal/backoff"},
	"internal/core":       {module + "/internal/backoff"}, // through supervision
	"supervision":         {module + "/internal/backoff"},
}

type pkg struct {
	path string
	deps []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Deps \",\"}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var pkgs []pkg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, deps, _ := strings.Cut(line, "|")
		p := pkg{path: path}
		if deps != "" {
			p.deps = strings.Split(deps, ",")
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func matches(path, pattern string) bool {
	switch {
	case pattern == "!std":
		return !isStd(path) && !strings.HasPrefix(path, module+"/")
	case strings.HasSuffix(pattern, "/"):
		return strings.HasPrefix(path, pattern)
	default:
		return path == pattern || strings.HasPrefix(path, pattern+"/")
	}
}

func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 8 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	checked := map[string]bool{}
	for _, r := range rules {
		from := module + "/" + r.from
		for _, p := range pkgs {
			var applies bool
			if strings.HasSuffix(r.from, "/") {
				applies = strings.HasPrefix(p.path, from)
			} else {
				applies = p.path == from
			}
			if !applies {
				continue
			}
			checked[r.from] = true
			for _, d := range p.deps {
				if slices.ContainsFunc(except[r.from], func(e string) bool { return matches(d, e) }) {
					continue
				}
				for _, f := range r.forbidden {
					if matches(d, f) && d != p.path {
						t.Errorf("%s depends on %s: %s", p.path, d, r.why)
					}
				}
			}
		}
	}
	for _, r := range rules {
		if !checked[r.from] {
			t.Errorf("rule for %s matched no package", r.from)
		}
	}
}

// TestNothingImportsSamples: samples are programs to read and run; tests
// and libraries import none of their code (test fixtures live in
// test/internal).
func TestNothingImportsSamples(t *testing.T) {
	prefix := module + "/samples/"
	for _, p := range listPackages(t) {
		if strings.HasPrefix(p.path, prefix) {
			continue
		}
		for _, d := range p.deps {
			if strings.HasPrefix(d, prefix) {
				t.Errorf("%s depends on %s: nothing imports a sample", p.path, d)
			}
		}
	}
}

// TestProvidersDoNotImportEachOther: a provider may share code only through
// providers/internal.
func TestProvidersDoNotImportEachOther(t *testing.T) {
	prefix := module + "/providers/"
	internal := prefix + "internal/"
	for _, p := range listPackages(t) {
		if !strings.HasPrefix(p.path, prefix) || strings.HasPrefix(p.path, internal) {
			continue
		}
		own := prefix + strings.SplitN(strings.TrimPrefix(p.path, prefix), "/", 2)[0]
		for _, d := range p.deps {
			if strings.HasPrefix(d, prefix) && !strings.HasPrefix(d, internal) && d != own && !strings.HasPrefix(d, own+"/") {
				t.Errorf("%s depends on %s: providers never import each other (share code in providers/internal)", p.path, d)
			}
		}
	}
}

// TestProtoactorIsBehindTheEngine: only the engine adapter, the cluster
// glue (internal/protocluster) and runtime, which wires them, may import
// protoactor directly.
func TestProtoactorIsBehindTheEngine(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{module + "/internal/protoengine": true, module + "/internal/protocluster": true, module + "/runtime": true}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, imports, _ := strings.Cut(line, "|")
		for _, imp := range strings.Split(imports, ",") {
			if strings.HasPrefix(imp, "github.com/asynkron/protoactor-go") && !allowed[path] {
				t.Errorf("%s imports %s directly; go through internal/catalog's Engine (or runtime.WithCluster)", path, imp)
			}
		}
	}
}
