package persistence

import (
	"errors"
	"fmt"
	"sort"
)

// ErrUnknownProvider is returned when a slot names a provider that is not
// registered. There is never a silent fallback to another provider.
var ErrUnknownProvider = errors.New("persistence: unknown provider")

// Providers maps provider names to stores: the named providers slots choose
// from with Provider. It is built once, before any actor activates (the
// runtime builds it from its options), and is read-only afterwards, so
// lookups take no lock.
type Providers struct {
	stores map[string]*Store
	def    string
}

// NewProviders returns the named stores as Providers. def names the store
// used by slots that name no provider; it may be empty when stores is empty
// or has exactly one entry (which then is the default).
func NewProviders(stores map[string]*Store, def string) (*Providers, error) {
	r := &Providers{stores: make(map[string]*Store, len(stores)), def: def}
	for name, s := range stores {
		if err := ValidateName("provider", name); err != nil {
			return nil, err
		}
		if s == nil {
			return nil, fmt.Errorf("persistence: provider %q: nil store", name)
		}
		r.stores[name] = s
	}
	if r.def == "" && len(r.stores) == 1 {
		for name := range r.stores {
			r.def = name
		}
	}
	if r.def != "" {
		if _, ok := r.stores[r.def]; !ok {
			return nil, fmt.Errorf("%w: default provider %q is not registered", ErrUnknownProvider, r.def)
		}
	}
	return r, nil
}

// Lookup returns the store registered under name; the empty name means the
// default provider. An unknown name returns an error matching
// ErrUnknownProvider.
func (r *Providers) Lookup(name string) (*Store, error) {
	if name == "" {
		if r.def == "" {
			return nil, fmt.Errorf("%w: no provider named and no default provider configured (registered: %v)",
				ErrUnknownProvider, r.Names())
		}
		name = r.def
	}
	s, ok := r.stores[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (registered: %v)", ErrUnknownProvider, name, r.Names())
	}
	return s, nil
}

// Default returns the name of the default provider, or "".
func (r *Providers) Default() string { return r.def }

// Names returns the registered provider names, sorted.
func (r *Providers) Names() []string {
	names := make([]string, 0, len(r.stores))
	for n := range r.stores {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ValidateName checks a provider, kind or slot name given in configuration:
// 1 to 128 bytes of ASCII letters, digits, '-', '_' and '.', starting with a
// letter or digit. what names the thing checked in the error message.
func ValidateName(what, name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%w: %s name %q must be 1 to 128 bytes", ErrInvalidArgument, what, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			i > 0 && (c == '-' || c == '_' || c == '.')
		if !ok {
			return fmt.Errorf("%w: %s name %q: only letters, digits, '-', '_' and '.' are allowed, starting with a letter or digit",
				ErrInvalidArgument, what, name)
		}
	}
	return nil
}
