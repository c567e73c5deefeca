package provider

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// ErrInvalidOption is wrapped by the errors of Invalid and Check;
// ErrorCode classifies it as InvalidArgument.
var ErrInvalidOption = errors.New("invalid option")

// Invalid returns an error wrapping ErrInvalidOption, formatted as
// fmt.Errorf does.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// Check checks the options every provider has, filling in their defaults,
// and keeps the first problem for Err. The zero Check is ready to use.
type Check struct{ err error }

// Limit returns the size limit n of the option named field, def if n is 0;
// n outside 0..max is a problem.
func (c *Check) Limit(field string, n, def, max int) int {
	switch {
	case n < 0 || n > max:
		c.Fail("%s %d is outside 0..%d", field, n, max)
	case n == 0:
		return def
	}
	return n
}

// Retention returns the tombstone retention d, driver.DefaultTombstoneRetention
// if d is 0; a negative d is a problem.
func (c *Check) Retention(d time.Duration) time.Duration {
	switch {
	case d < 0:
		c.Fail("negative TombstoneRetention %v", d)
	case d == 0:
		return driver.DefaultTombstoneRetention
	}
	return d
}

// Fail records a problem, formatted as fmt.Errorf does, unless one was
// recorded already.
func (c *Check) Fail(format string, args ...any) {
	if c.err == nil {
		c.err = Invalid(format, args...)
	}
}

// Err returns the first problem, wrapping ErrInvalidOption, or nil.
func (c *Check) Err() error { return c.err }

// Clock returns now, or time.Now if now is nil.
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// CompareKeys orders keys by kind, id and slot, byte by byte: the order in
// which a provider writes the rows of a batch, so that transactions
// writing several rows lock them in one order and cannot deadlock.
func CompareKeys(a, b driver.Key) int {
	return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.ID, b.ID), strings.Compare(a.Slot, b.Slot))
}

// WriteOrder returns the indexes of writes sorted by CompareKeys of their
// keys, keeping the order of writes to one key.
func WriteOrder(writes []driver.Write) []int {
	order := make([]int, len(writes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return CompareKeys(writes[a].Key, writes[b].Key) })
	return order
}
