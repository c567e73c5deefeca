package provider

import (
	"errors"
	"fmt"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// ErrInvalidOption is wrapped by the errors of the option checks below;
// ErrorCode classifies it as InvalidArgument.
var ErrInvalidOption = errors.New("invalid option")

// Invalid returns an error wrapping ErrInvalidOption, formatted as
// fmt.Errorf does.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// Limit returns the size limit n of the option named field, def if n is 0,
// or an error if n is outside 0..max.
func Limit(field string, n, def, max int) (int, error) {
	switch {
	case n < 0 || n > max:
		return 0, Invalid("%s %d is outside 0..%d", field, n, max)
	case n == 0:
		return def, nil
	}
	return n, nil
}

// Retention returns the tombstone retention d, driver.DefaultTombstoneRetention
// if d is 0, or an error if d is negative.
func Retention(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, Invalid("negative TombstoneRetention %v", d)
	case d == 0:
		return driver.DefaultTombstoneRetention, nil
	}
	return d, nil
}

// Clock returns now, or time.Now if now is nil.
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
