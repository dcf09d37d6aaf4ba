package app

import (
	"fmt"
	"sync"
	"testing"
)

func TestNewStudioStatus(t *testing.T) {
	if got := NewStudio().Status(); got != StatusNoModel {
		t.Errorf("Status() = %q, want %q", got, StatusNoModel)
	}
}

func TestSetStatusReachesEveryHookInOrder(t *testing.T) {
	s := NewStudio()
	var got []string
	s.OnStatus(func(msg string) { got = append(got, "a:"+msg) })
	s.OnStatus(func(msg string) { got = append(got, "b:"+msg) })
	s.SetStatus("one")
	s.SetStatus("two")
	want := []string{"a:one", "b:one", "a:two", "b:two"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("hooks saw %q, want %q", got, want)
	}
	if s.Status() != "two" {
		t.Errorf("Status() = %q, want %q", s.Status(), "two")
	}
}

func TestSetStatusConcurrently(t *testing.T) {
	s := NewStudio()
	var mu sync.Mutex
	seen := map[string]bool{}
	s.OnStatus(func(msg string) {
		mu.Lock()
		seen[msg] = true
		mu.Unlock()
	})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s.SetStatus(fmt.Sprint("worker ", i))
			_ = s.Status()
		})
	}
	wg.Wait()
	if len(seen) != 8 {
		t.Errorf("hook saw %d distinct messages, want 8: %v", len(seen), seen)
	}
	if !seen[s.Status()] {
		t.Errorf("final Status() %q was never delivered", s.Status())
	}
}

func TestOnStatusRemove(t *testing.T) {
	s := NewStudio()
	var a, b []string
	removeA := s.OnStatus(func(m string) { a = append(a, m) })
	s.OnStatus(func(m string) { b = append(b, m) })
	s.SetStatus("one")
	removeA()
	removeA() // removing twice is harmless
	s.SetStatus("two")
	if len(a) != 1 || a[0] != "one" {
		t.Fatalf("removed hook got %v, want only the message before removal", a)
	}
	if len(b) != 2 || b[1] != "two" {
		t.Fatalf("remaining hook got %v", b)
	}
}
