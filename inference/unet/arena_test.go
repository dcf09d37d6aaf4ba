package unet

import (
	"context"
	"runtime"
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

// A sampling step's forward pass allocates little beyond its recycled
// activations: working memory (attention's packed operands, GEMM tiles,
// im2col columns) comes from pools and the norms keep no moments without a
// graph. What is left are operator and tensor headers, closures and the
// pool misses after a collection (sync.Pools are emptied by the
// collector, which runs often on this small heap). The bound is half the
// activation memory the arena recycles per pass; measured on two threads,
// 15 to 23% (0.58 to 0.93 of 3.97 MB), where per-call attention buffers
// alone had made it 260%.
func TestForwardSteadyStateAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: allocation figures are checked in full runs")
	}
	m := tiny(t)
	m.e.B.SetThreads(2) // goroutine starts allocate: a fixed count keeps the figure comparable
	x, ts, cond := inputs(t, golden.Open(t, ioFile))
	forward := func() {
		if _, err := m.Forward(context.Background(), x, ts, cond); err != nil {
			t.Fatal(err)
		}
	}
	forward()
	forward()
	idle := m.arena.Stats().IdleBytes
	const runs = 10
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range runs {
		forward()
	}
	runtime.ReadMemStats(&m1)
	bytes := int64(m1.TotalAlloc-m0.TotalAlloc) / runs
	t.Logf("a warm forward allocates %d objects, %d bytes; the arena recycles %d bytes", (m1.Mallocs-m0.Mallocs)/runs, bytes, idle)
	if bytes > idle/2 {
		t.Errorf("a warm forward allocates %d bytes, more than half the %d bytes of activations it recycles", bytes, idle)
	}
}
