// Package persistence is Quark's portable state API: typed, versioned state
// slots for actors, and the [Store] that every storage provider is used
// through.
//
// # Slots
//
// An actor declares its slots in its factory:
//
//	acct := persistence.Declare[AccountState](ctx, "account", persistence.Provider("postgres-db"))
//
// A slot is loaded before OnActivate (unless declared [Lazy]); its [Slot.State]
// is a pointer to the state, changed in place. [Slot.Save] writes through;
// otherwise the slot is flushed on deactivation if its encoding changed
// (dirty tracking compares the encoded state with what was last loaded or
// saved, so no MarkDirty call is needed). Options choose the provider, the
// codec ([JSON] by default), a [TTL], a [Schema] version with [Migrate]
// steps, and [Compress]ion.
//
// # Codecs and state types
//
// A [Codec] turns the state into bytes and back. A state type the codec
// would silently lose part of is refused with a [*TypeError] naming the
// field that would be lost: at the kind's registration for the slots the
// actor's struct holds as *Slot[T] fields (runtime.Register checks them
// with [CheckSlotFields], without running the factory), and otherwise when
// Declare runs in the factory, at the kind's first activation, with the
// slot's codec when it implements [TypeChecker]. [JSON]
// does, by the rules of encoding/json: every field must be exported (or
// tagged `json:"-"` to leave it out on purpose), and no field may be a func,
// a channel, an interface, a complex number, a map with keys encoding/json
// cannot use, or make the type recursive; types that encode and decode
// themselves (time.Time, big.Int, your json.Marshaler and json.Unmarshaler)
// are trusted. [CheckType] lists the rules. The check runs once per codec
// and type, not once per activation. A codec that does not implement
// TypeChecker is trusted with every type.
//
// # Versions and conflicts
//
// Every record has an int64 version; 0 means absent. A save succeeds only if
// the stored version is the one the slot last saw, and creation is atomic.
// A mismatch is a [*ConcurrencyError] matching [ErrConflict]. When a save
// fails, the slot's state is rolled back to its last persisted copy; if the
// store may now differ (a conflict or an unknown outcome) the slot is also
// marked stale and the activation reloads after the current message. The
// actor never runs on state the store does not have without knowing it.
//
// # Errors
//
// Every error is a [*ConcurrencyError], a [*DecodeError] (a stored record that
// cannot be decoded; it is never overwritten), an [*Error] with a [Code] from
// a closed set, a [*TypeError] (a declaration of a state type the codec cannot
// store; it matches [ErrInvalidArgument]), or the caller's own context error
// passed through as it is.
// Each code has a sentinel for errors.Is ([ErrNotFound], [ErrUnavailable],
// ...).
//
// # Providers
//
// Providers implement package driver and wrap it with [NewStore] (and
// [NewJournal] for event journals). A [Providers] maps provider names to
// stores; a slot naming an unknown provider fails with
// [ErrUnknownProvider], never falling back silently. [OpenStore] and
// [OpenJournal] open a store or a journal by URL ("postgres://...",
// "embedded:data/app.db", "memory:") through the schemes the imported
// providers register on [DefaultURLMux].
//
// # Observing
//
// [Instrument] derives a Store that reports each Load, Save, Delete and
// SaveBatch to an [Observer], or a Journal that reports each Append, Read,
// Last and Streams: the operation, the provider name, the key or stream,
// how it ended ([Code]) and how long it took. The runtime uses it to feed
// OpenTelemetry metrics and spans; this package imports no telemetry
// library. A Store or Journal that is not instrumented reads no clock and
// allocates nothing for observation.
package persistence
