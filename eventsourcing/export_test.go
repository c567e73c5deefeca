package eventsourcing

// SetParallelReplay turns the parallel decoding of long replays on or off
// and returns a function that restores the previous setting. Tests and
// benchmarks use it to measure and compare both paths; it must not be
// called while replays run.
func SetParallelReplay(on bool) (restore func()) {
	old := parallelReplay
	parallelReplay = on
	return func() { parallelReplay = old }
}
