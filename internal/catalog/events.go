package catalog

import (
	"sync"
	"sync/atomic"

	"github.com/quarkgo/quark/activation"
)

// events is a copy-on-write list of subscribers.
type events struct {
	mu   sync.Mutex // serialises writers
	subs atomic.Pointer[[]*subscriber]
}

type subscriber struct{ fn func(activation.Event) }

func (e *events) subscribe(fn func(activation.Event)) func() {
	s := &subscriber{fn: fn}
	e.mu.Lock()
	defer e.mu.Unlock()
	var list []*subscriber
	if p := e.subs.Load(); p != nil {
		list = append(list, *p...)
	}
	list = append(list, s)
	e.subs.Store(&list)
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		p := e.subs.Load()
		if p == nil {
			return
		}
		var kept []*subscriber
		for _, o := range *p {
			if o != s {
				kept = append(kept, o)
			}
		}
		e.subs.Store(&kept)
	}
}

func (e *events) publish(ev activation.Event) {
	p := e.subs.Load()
	if p == nil {
		return
	}
	for _, s := range *p {
		s.fn(ev)
	}
}
