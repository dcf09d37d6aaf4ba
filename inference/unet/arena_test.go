package unet

import (
	"context"
	"slices"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

// Forward passes recycle their activations through the model's arena:
// repeated passes give the same result, results handed out earlier stay
// intact, and after the first pass no activation buffer is allocated.
func TestForwardRecyclesActivations(t *testing.T) {
	m := tiny(t)
	x, ts, cond := inputs(t, golden.Open(t, ioFile))
	first, err := m.Forward(context.Background(), x, ts, cond)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(first.Data())
	warm := m.arena.Stats()
	if warm.IdleBytes == 0 {
		t.Fatalf("arena %+v: the first pass gave nothing back", warm)
	}
	for range 2 {
		again, err := m.Forward(context.Background(), x, ts, cond)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(again.Data(), want) {
			t.Fatal("a repeated pass gives another result")
		}
		if &again.Data()[0] == &first.Data()[0] {
			t.Fatal("two passes returned the same buffer")
		}
	}
	if !slices.Equal(first.Data(), want) {
		t.Error("a later pass overwrote an earlier result")
	}
	st := m.arena.Stats()
	if got := st.Allocated - warm.Allocated; got != 2 {
		t.Errorf("two warm passes allocated %d activation buffers, want 2 (their results)", got)
	}
	if st.IdleBytes != warm.IdleBytes {
		t.Errorf("idle arena memory went from %d to %d bytes for the same pass", warm.IdleBytes, st.IdleBytes)
	}
	m.ReleaseActivations()
	if got := m.arena.Stats().IdleBytes; got != 0 {
		t.Errorf("%d idle bytes after ReleaseActivations", got)
	}
	if again, err := m.Forward(context.Background(), x, ts, cond); err != nil || !slices.Equal(again.Data(), want) {
		t.Errorf("a pass after ReleaseActivations: %v", err)
	}
}
