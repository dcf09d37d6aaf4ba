package app

import (
	"sync"
	"testing"
)

func TestListeners(t *testing.T) {
	var l listeners[int]
	l.emit(1) // none yet
	var got []int
	l.add(func(v int) { got = append(got, v) })
	l.add(func(v int) {
		got = append(got, 10*v)
		if v == 2 {
			l.add(func(int) {}) // registering from a callback does not deadlock
		}
	})
	l.emit(2)
	if len(got) != 2 || got[0] != 2 || got[1] != 20 {
		t.Errorf("callbacks saw %v, want [2 20]", got)
	}
	// Concurrent adds and emits are safe (run with -race).
	var c listeners[int]
	var mu sync.Mutex
	calls := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c.add(func(int) { mu.Lock(); calls++; mu.Unlock() })
			c.emit(3)
		})
	}
	wg.Wait()
	if calls < 4 || calls > 16 {
		t.Errorf("%d calls from 4 concurrent emits over up to 4 callbacks", calls)
	}
}
