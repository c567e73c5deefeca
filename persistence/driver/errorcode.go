package driver

import "strconv"

// ErrorCode is the closed set of error classes every provider maps its native
// errors to, in its Store.ErrorCode method.
type ErrorCode int

// The error codes. Providers return only these.
const (
	// Internal: an error that fits no other code; a bug or an unexpected
	// backend answer. This is the zero value.
	Internal ErrorCode = iota
	// NotFound: no live record under the key.
	NotFound
	// Conflict: the stored version differs from the expected one.
	Conflict
	// InvalidArgument: a key, option or value the store cannot accept.
	InvalidArgument
	// TooLarge: the record exceeds the store's or the configured size limit.
	TooLarge
	// Unavailable: the backend could not be reached or refused to serve
	// (connection refused or reset, throttling, failover). Retrying may help.
	Unavailable
	// Canceled: the operation's context was canceled.
	Canceled
	// DeadlineExceeded: the operation's context deadline passed.
	DeadlineExceeded
	// Corrupt: a stored record could not be decoded; it is left untouched.
	Corrupt
	// Closed: the store was used after Close.
	Closed
)

var codeNames = [...]string{
	Internal:         "Internal",
	NotFound:         "NotFound",
	Conflict:         "Conflict",
	InvalidArgument:  "InvalidArgument",
	TooLarge:         "TooLarge",
	Unavailable:      "Unavailable",
	Canceled:         "Canceled",
	DeadlineExceeded: "DeadlineExceeded",
	Corrupt:          "Corrupt",
	Closed:           "Closed",
}

// String returns the code's name, e.g. "Conflict".
func (c ErrorCode) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "ErrorCode(" + strconv.Itoa(int(c)) + ")"
}
