package app

import (
	"slices"
	"sync"
)

// listeners is a list of callbacks for events of type T (the OnX hooks of
// the services), safe for concurrent use. The zero value is empty and
// ready. Callbacks run on the emitting goroutine, outside the lock, so one
// may register another or call back into the service.
type listeners[T any] struct {
	mu  sync.Mutex
	fns []func(T)
}

// add registers fn.
func (l *listeners[T]) add(fn func(T)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fns = append(l.fns, fn)
}

// emit calls every registered callback with v, in registration order.
func (l *listeners[T]) emit(v T) {
	l.mu.Lock()
	fns := slices.Clone(l.fns)
	l.mu.Unlock()
	for _, fn := range fns {
		fn(v)
	}
}
