// Package provider is the plumbing the storage providers share, so that
// every provider reads its URLs, classifies its errors and checks its
// options the same way:
//
//   - [Query] reads the parameters of a store or journal URL with typed
//     getters, and reports the unknown ones: every Quark parameter is named
//     quark_<name>, the others belong to the backend's driver;
//   - [ErrorCode] classifies what every provider's errors share: a broken or
//     unreachable connection and a driver's own deadline are Unavailable,
//     context.Canceled is Canceled. A provider maps its native codes first
//     and then calls it;
//   - [URL] makes the errors of a URL opener, with the URL's secrets hidden
//     (persistence.RedactURL and persistence.HideSecrets);
//   - [Check] checks and defaults the options every provider has (size
//     limits, the tombstone retention).
//
// It is internal to the providers.
package provider
