package catalog

import "time"

// SetCancelGrace changes how long Shutdown waits for the store calls of the
// flushes it canceled, until restore is called.
func SetCancelGrace(d time.Duration) (restore func()) {
	old := cancelGrace
	cancelGrace = d
	return func() { cancelGrace = old }
}
