package main

import "fmt"

// serverName is the server name the stand-in gives in messages.
const serverName = "tdsstub"

// sqlError is an error the stand-in answers with an ERROR token: a real
// SQL Server error number, severity (class), state and message.
type sqlError struct {
	Number  int32
	Class   byte
	State   byte
	Message string
	Proc    string

	// rollback: the error ends the session's transaction (deadlock victim,
	// or any error under XACT_ABORT).
	rollback bool
}

func (e *sqlError) Error() string { return fmt.Sprintf("mssql error %d: %s", e.Number, e.Message) }

// Error numbers the stand-in produces by itself.
const (
	errSyntax         = 102   // Incorrect syntax near '%s'.
	errMustDeclare    = 137   // Must declare the scalar variable "%s".
	errInvalidObject  = 208   // Invalid object name '%s'.
	errDeadlock       = 1205  // chosen as the deadlock victim
	errNullColumn     = 515   // Cannot insert the value NULL into column
	errCheck          = 547   // conflicted with the CHECK constraint
	errDuplicateKey   = 2627  // Violation of PRIMARY KEY constraint
	errDuplicateIndex = 2601  // Cannot insert duplicate key row
	errNoProc         = 2812  // Could not find stored procedure '%s'.
	errNoCommit       = 3902  // The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.
	errNoRollback     = 3903  // The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.
	errParamNotGiven  = 8178  // expects the parameter '%s', which was not supplied.
	errLoginFailed    = 18456 // Login failed for user '%s'.
	errDBUnavailable  = 40613 // Database is not currently available.
)

// knownMessages gives realistic text and severity for errors injected by
// number (see sp_tdsstub_fault).
var knownMessages = map[int32]struct {
	class byte
	text  string
}{
	errDeadlock:       {13, "Transaction (Process ID 52) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction."},
	errDuplicateKey:   {14, "Violation of PRIMARY KEY constraint 'PK_quark_state'. Cannot insert duplicate key in object 'dbo.quark_state'."},
	errDuplicateIndex: {14, "Cannot insert duplicate key row in object 'dbo.quark_state' with unique index 'PK_quark_state'."},
	errDBUnavailable:  {17, "Database 'quark' on server 'tdsstub' is not currently available. Please retry the connection later."},
	40197:             {17, "The service has encountered an error processing your request. Please try again. Error code 4815."},
	40501:             {20, "The service is currently busy. Retry the request after 10 seconds. Incident ID: tdsstub."},
	49918:             {16, "Cannot process request. Not enough resources to process request."},
	49919:             {16, "Cannot process create or update request. Too many create or update operations in progress."},
	49920:             {16, "Cannot process request. Too many operations in progress."},
	4060:              {11, "Cannot open database \"quark\" requested by the login. The login failed."},
	10928:             {16, "Resource ID : 1. The request limit for the database is 30 and has been reached."},
	10929:             {16, "Resource ID : 1. The min guarantee is 0, max limit is 30 and the current usage for the database is 30. However, the server is currently too busy to support requests greater than 30 for this database."},
	1222:              {16, "Lock request time out period exceeded."},
}

// injected returns the error a fault of number n produces.
func injected(n int32) *sqlError {
	m, ok := knownMessages[n]
	if !ok {
		m.class, m.text = 16, fmt.Sprintf("tdsstub: injected error %d", n)
	}
	// A deadlock victim's transaction is always rolled back.
	return &sqlError{Number: n, Class: m.class, State: 1, Message: m.text, rollback: n == errDeadlock}
}

func errorf(number int32, class byte, format string, args ...any) *sqlError {
	return &sqlError{Number: number, Class: class, State: 1, Message: fmt.Sprintf(format, args...)}
}
