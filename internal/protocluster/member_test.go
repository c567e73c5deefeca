package protocluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/catalog"
	"github.com/quarkgo/quark/internal/protoengine"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

// ownProcess runs the calling test in a child process and reports true in
// the parent (see runtime's cluster tests: several members in one process
// race on gRPC's global logger with the gRPC goroutines of an earlier test).
func ownProcess(t *testing.T) bool {
	t.Helper()
	const env = "QUARK_PROTOCLUSTER_TEST_CHILD"
	if os.Getenv(env) == t.Name() {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	return true
}

type secret struct{ Code string }
type hidden struct{ N int }

// teller replies what it is asked for.
type teller struct{}

func (teller) Receive(_ *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case secret:
		return "got " + m.Code, nil
	case string:
		if m == "hidden" {
			return hidden{N: 1}, nil
		}
		return m, nil
	}
	return nil, activation.ErrUnknownMessage
}

type testMember struct {
	m      *Member
	cat    *catalog.Catalog
	engine *protoengine.Engine
}

// startMembers starts members on one network, each with its own message
// registry, hosting the kind "Teller".
func startMembers(t *testing.T, regs ...*Registry) []*testMember {
	t.Helper()
	net := NewNetwork()
	gate := NewStartGate(len(regs), 30*time.Second)
	var out []*testMember
	for _, reg := range regs {
		hook := NewStartHook()
		engine := protoengine.New(slog.New(hook))
		m, err := New(Config{Name: "t", Provider: NetworkProvider{N: net}, System: engine.System(), Messages: reg, Hook: hook})
		if err != nil {
			t.Fatal(err)
		}
		store := memory.New(nil)
		preg, err := persistence.NewProviders(map[string]*persistence.Store{"mem": store}, "")
		if err != nil {
			t.Fatal(err)
		}
		cat, err := catalog.NewCatalog(catalog.Config{Engine: engine, Providers: preg, Router: m})
		if err != nil {
			t.Fatal(err)
		}
		if err := catalog.Register(cat, "Teller", func(*activation.Context) teller { return teller{} }); err != nil {
			t.Fatal(err)
		}
		m.Bind(cat)
		cat.Start()
		gate.Attach(hook)
		tm := &testMember{m: m, cat: cat, engine: engine}
		out = append(out, tm)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m.PrepareLeave()
			if err := cat.Shutdown(ctx); err != nil {
				t.Error(err)
			}
			if err := m.Stop(ctx); err != nil {
				t.Error(err)
			}
			engine.Shutdown()
			store.Close()
		})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(out))
	for i, tm := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs[i] = tm.m.Start(ctx, nil)
		}()
		<-gate.Arrived()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestMessagesMembersCannotDecode: a message or a reply whose type the
// other member has not registered comes back to the caller as a clear
// error, and so does a protobuf message that is not an envelope.
func TestMessagesMembersCannotDecode(t *testing.T) {
	if ownProcess(t) {
		return
	}
	ra, rb := NewRegistry(), NewRegistry()
	if err := Register[secret](ra, "test.Secret"); err != nil {
		t.Fatal(err)
	}
	if err := Register[hidden](rb, "test.Hidden"); err != nil {
		t.Fatal(err)
	}
	ms := startMembers(t, ra, rb)
	a, b := ms[0], ms[1]
	// An identity b owns, seen from a.
	var id string
	for i := 0; ; i++ {
		id = "t" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if a.m.Owner("Teller", id) == b.m.Address() {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ref := a.cat.Ref("Teller", id)
	if v, err := catalog.Ask(ctx, ref, "plain"); err != nil || v != "plain" {
		t.Fatalf("ask: %v, %v", v, err)
	}
	_, err := catalog.Ask(ctx, ref, secret{Code: "x"})
	if !errors.Is(err, ErrUnregistered) || !strings.Contains(err.Error(), "test.Secret") || !strings.Contains(err.Error(), b.m.Address()) {
		t.Errorf("message b cannot decode: %v", err)
	}
	_, err = catalog.Ask(ctx, ref, "hidden")
	if !errors.Is(err, ErrUnregistered) || !strings.Contains(err.Error(), "test.Hidden") {
		t.Errorf("reply a cannot decode: %v", err)
	}
	// A protobuf message that is not an envelope, sent straight to the
	// grain, is answered with an error rather than crashing anything.
	pid := a.m.cached("Teller", id)
	if pid == nil {
		t.Fatal("grain not cached")
	}
	r := a.m.newReply()
	a.m.root.RequestWithCustomSender(pid, wrapperspb.Bytes([]byte("garbage")), r.pid)
	v, err := r.raw(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.answer(v); !errors.Is(err, ErrUndecodable) {
		t.Errorf("garbage: %v", err)
	}
	// The grain still serves.
	if v, err := catalog.Ask(ctx, ref, "again"); err != nil || v != "again" {
		t.Fatalf("ask after garbage: %v, %v", v, err)
	}
}
