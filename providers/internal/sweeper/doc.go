// Package sweeper runs a provider's periodic removal of expired records in
// the background. Providers without native expiry (the embedded and
// PostgreSQL providers) share it; it is internal to the providers.
package sweeper
