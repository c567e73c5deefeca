package runtime_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	ignore := []goleak.Option{
		// protoactor's dead-letter log throttle: a goroutine that lives one
		// second after a dead letter nobody waits for (a one-way message to
		// an actor that was moving between cluster members).
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
	}
	if os.Getenv(childEnv) == "" {
		goleak.VerifyTestMain(m, ignore...)
		return
	}
	// A cluster test's child process (see ownProcess). A message sent to a
	// member at the moment it stops makes protoactor open a connection that
	// retries five times, two seconds apart, before it gives up: wait that
	// long for its goroutines to end.
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := goleak.Find(ignore...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	os.Exit(code)
}
