package provider

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Prefix starts the name of every Quark parameter of a store or journal
// URL. Parameters without it belong to the backend's driver.
const Prefix = "quark_"

// Query reads the query parameters of a store or journal URL. Each getter
// reads one parameter into a destination, which it leaves as it is when the
// parameter is absent; a parameter given several times takes its last
// value. The first value that does not parse is kept for Err, which also
// names the Quark parameters no getter asked for.
type Query struct {
	vals url.Values
	read map[string]bool // the names getters asked for, present or not
	err  error
}

// NewQuery returns a Query over the parameters of u.
func NewQuery(u *url.URL) *Query {
	return &Query{vals: u.Query(), read: make(map[string]bool)}
}

// get returns the last value of the parameter name, and whether it is
// present.
func (q *Query) get(name string) (string, bool) {
	q.read[name] = true
	vs := q.vals[name]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// fail keeps the first problem.
func (q *Query) fail(name, v, want string) {
	if q.err == nil {
		q.err = fmt.Errorf("%s=%q: want %s", name, v, want)
	}
}

// String reads the parameter name as it is. An empty value sets dst to ""
// (for options, the default).
func (q *Query) String(name string, dst *string) {
	if v, ok := q.get(name); ok {
		*dst = v
	}
}

// Int reads the parameter name as a decimal integer.
func (q *Query) Int(name string, dst *int) {
	if v, ok := q.get(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			q.fail(name, v, "an integer")
			return
		}
		*dst = n
	}
}

// byteUnits are the suffixes Bytes accepts, longest first.
var byteUnits = []struct {
	suffix string
	size   int
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// Bytes reads the parameter name as a size in bytes: a non-negative
// decimal integer, optionally followed by B, KiB, MiB or GiB (4MiB is
// 4194304).
func (q *Query) Bytes(name string, dst *int) {
	v, ok := q.get(name)
	if !ok {
		return
	}
	digits, unit := v, 1
	for _, u := range byteUnits {
		if s, found := strings.CutSuffix(v, u.suffix); found {
			digits, unit = s, u.size
			break
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || digits == "" || digits[0] == '+' || n > int(^uint(0)>>1)/unit {
		q.fail(name, v, "a size in bytes, such as 1048576 or 4MiB")
		return
	}
	*dst = n * unit
}

// Bool reads the parameter name as true (true, 1, on) or false (false, 0,
// off).
func (q *Query) Bool(name string, dst *bool) {
	v, ok := q.get(name)
	if !ok {
		return
	}
	switch strings.ToLower(v) {
	case "true", "1", "on":
		*dst = true
	case "false", "0", "off":
		*dst = false
	default:
		q.fail(name, v, "true or false")
	}
}

// Duration reads the parameter name as a Go duration, such as 24h or
// 250ms.
func (q *Query) Duration(name string, dst *time.Duration) {
	if v, ok := q.get(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			q.fail(name, v, "a duration, such as 24h or 250ms")
			return
		}
		*dst = d
	}
}

// Interval reads the parameter name as a Go duration or "off", which sets
// dst to -1: what the interval options of the providers take for
// "disabled".
func (q *Query) Interval(name string, dst *time.Duration) {
	if v, ok := q.vals[name]; ok && len(v) > 0 && v[len(v)-1] == "off" {
		q.read[name] = true
		*dst = -1
		return
	}
	q.Duration(name, dst)
}

// Enum reads the parameter name as one of the names of values, compared
// without regard to case, and sets dst to its value.
func Enum[T any](q *Query, name string, dst *T, values map[string]T) {
	v, ok := q.get(name)
	if !ok {
		return
	}
	for k, val := range values {
		if strings.EqualFold(k, v) {
			*dst = val
			return
		}
	}
	q.fail(name, v, "one of "+strings.Join(slices.Sorted(maps.Keys(values)), ", "))
}

// Func reads the parameter name with parse, for values of a form of the
// provider's own. An error of parse is reported with the parameter's name
// and value.
func (q *Query) Func(name string, parse func(v string) error) {
	if v, ok := q.get(name); ok {
		if err := parse(v); err != nil && q.err == nil {
			q.err = fmt.Errorf("%s=%q: %w", name, v, err)
		}
	}
}

// Rest returns the parameters no getter asked for that are not Quark's:
// those of the backend's driver.
func (q *Query) Rest() url.Values {
	rest := url.Values{}
	for name, vs := range q.vals {
		if !q.read[name] && !strings.HasPrefix(name, Prefix) {
			rest[name] = vs
		}
	}
	return rest
}

// RestURL returns u with only the parameters of Rest in its query, for the
// driver's own URL parser.
func (q *Query) RestURL(u *url.URL) string {
	rest := *u
	rest.RawQuery = q.Rest().Encode()
	return rest.String()
}

// Err returns the first value that did not parse, or else an error naming
// every Quark parameter no getter asked for, with the known ones; nil if
// there is neither. The other parameters are left to the driver (Rest).
func (q *Query) Err() error {
	return q.check(func(name string) bool { return strings.HasPrefix(name, Prefix) })
}

// ErrStrict is Err for a URL that carries no driver parameters: every
// parameter no getter asked for is unknown.
func (q *Query) ErrStrict() error { return q.check(func(string) bool { return true }) }

func (q *Query) check(ours func(name string) bool) error {
	if q.err != nil {
		return q.err
	}
	var unknown, known []string
	for name := range q.vals {
		if !q.read[name] && ours(name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	for name := range q.read {
		if ours(name) {
			known = append(known, name)
		}
	}
	slices.Sort(unknown)
	slices.Sort(known)
	what := "parameter"
	if len(unknown) > 1 {
		what = "parameters"
	}
	return fmt.Errorf("unknown %s %s (known: %s)", what, strings.Join(unknown, ", "), strings.Join(known, ", "))
}
