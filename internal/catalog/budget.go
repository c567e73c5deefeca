package catalog

import "time"

// budget counts the restarts of one actor within a sliding window, for the
// strategy's MaxRestarts. The zero value is ready; it is used from the
// activation's goroutine only.
type budget struct {
	times []time.Time
}

// spend records a restart at now and reports whether it is within max
// restarts per window (max 0: always).
func (b *budget) spend(now time.Time, max int, window time.Duration) bool {
	if max <= 0 {
		return true
	}
	keep := b.times[:0]
	for _, t := range b.times {
		if window <= 0 || now.Sub(t) < window {
			keep = append(keep, t)
		}
	}
	b.times = append(keep, now)
	return len(b.times) <= max
}
