package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
)

func TestParseShape(t *testing.T) {
	for in, want := range map[string]Shape{
		"4096x320x2880":    {4096, 320, 2880},
		" 2048×2048×2048 ": {2048, 2048, 2048},
		"1X2X3":            {1, 2, 3},
	} {
		got, err := ParseShape(in)
		if err != nil || got != want {
			t.Errorf("ParseShape(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "4096x320", "1x2x3x4", "ax2x3", "0x2x3", "-1x2x3", "100000x100000x100000"} {
		if s, err := ParseShape(in); err == nil {
			t.Errorf("ParseShape(%q) = %v, want an error", in, s)
		}
	}
	if f := (Shape{2, 3, 5}).Flops(); f != 60 {
		t.Errorf("Flops = %v, want 60", f)
	}
}

// counting wraps a backend, counting Gemm calls and checking each result
// against a float64 reference.
type counting struct {
	backend.Backend
	t     *testing.T
	calls int
}

func (c *counting) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, cm []float32, ldc int) {
	c.calls++
	c.Backend.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
	for i := range m {
		for j := range n {
			var want float64
			for p := range k {
				want += float64(a[i*lda+p]) * float64(b[p*ldb+j])
			}
			if d := math.Abs(float64(cm[i*ldc+j]) - want); d > 1e-4*float64(k) {
				c.t.Fatalf("C[%d,%d] = %v, want %v", i, j, cm[i*ldc+j], want)
			}
		}
	}
}

func TestTimer(t *testing.T) {
	be := &counting{Backend: cpu.New(), t: t}
	tm := NewTimer(be)
	s := Shape{7, 33, 19}
	if d, err := tm.Best(s, 3); err != nil || d <= 0 {
		t.Fatalf("Best = %v, %v; want a positive duration", d, err)
	}
	if be.calls != 4 {
		t.Errorf("first Best(3 runs): %d Gemm calls, want 4 (a warm-up and 3)", be.calls)
	}
	if _, err := tm.Best(s, 2); err != nil || be.calls != 6 {
		t.Errorf("second Best(2 runs): %d Gemm calls in all (err %v), want 6 (no second warm-up)", be.calls, err)
	}
	if _, err := tm.Best(s, 0); err == nil {
		t.Error("Best with 0 runs: no error")
	}
	if _, err := tm.Best(Shape{0, 1, 1}, 1); err == nil {
		t.Error("Best of an empty shape: no error")
	}
}

// TestServeClient runs the protocol over pipes, as between a parent and a
// child process: greeting, timings, bad requests, then the end of input.
func TestServeClient(t *testing.T) {
	reqR, reqW := io.Pipe()
	repR, repW := io.Pipe()
	be := &counting{Backend: cpu.New(), t: t}
	done := make(chan error, 1)
	go func() {
		err := Serve(context.Background(), reqR, repW, be)
		repW.Close()
		done <- err
	}()
	c, err := NewClient(reqW, repR)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != be.Name() || c.Core() != BLASCore() {
		t.Errorf("client sees %q core %q, want %q core %q", c.Name(), c.Core(), be.Name(), BLASCore())
	}
	if d, err := c.Best(Shape{9, 17, 5}, 2); err != nil || d <= 0 {
		t.Errorf("Best = %v, %v; want a positive duration", d, err)
	}
	if be.calls != 3 {
		t.Errorf("server ran %d Gemm calls, want 3", be.calls)
	}
	if _, err := c.Best(Shape{0, 17, 5}, 2); err == nil || !strings.Contains(err.Error(), "at least 1") {
		t.Errorf("Best of an empty shape: %v, want the server's error", err)
	}
	fmt.Fprintln(reqW, "not a request")
	if l, err := c.line(); err != nil || !strings.HasPrefix(l, "error request") {
		t.Errorf("reply to a bad request: %q, %v; want an error line", l, err)
	}
	if d, err := c.Best(Shape{3, 4, 5}, 1); err != nil || d <= 0 {
		t.Errorf("Best after a bad request = %v, %v; want the server to go on", d, err)
	}
	reqW.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve at the end of input: %v", err)
	}
	if _, err := c.Best(Shape{3, 4, 5}, 1); err == nil {
		t.Error("Best after the server ended: no error")
	}
}

func TestNewClientBadGreeting(t *testing.T) {
	for _, g := range []string{"", "hello\n", "ready a\n"} {
		if _, err := NewClient(io.Discard, strings.NewReader(g)); err == nil {
			t.Errorf("greeting %q: no error", g)
		}
	}
}

// scripted returns the durations it is given, in order, and logs each call.
type scripted struct {
	id   int
	ds   []time.Duration
	log  *[]string
	fail bool
}

func (s *scripted) Best(sh Shape, reps int) (time.Duration, error) {
	*s.log = append(*s.log, fmt.Sprintf("%d:%d", s.id, sh.M))
	if s.fail {
		return 0, fmt.Errorf("broken")
	}
	d := s.ds[0]
	s.ds = s.ds[1:]
	return d, nil
}

func TestCompare(t *testing.T) {
	var log []string
	ms := time.Millisecond
	// Two shapes, three rounds: runner 0 sees shape 1 then 2 each round.
	a := &scripted{id: 0, ds: []time.Duration{5 * ms, 9 * ms, 3 * ms, 8 * ms, 4 * ms, 7 * ms}, log: &log}
	b := &scripted{id: 1, ds: []time.Duration{6 * ms, 2 * ms, 6 * ms, 1 * ms, 7 * ms, 3 * ms}, log: &log}
	rounds := 0
	best, err := Compare(context.Background(), []Shape{{1, 1, 1}, {2, 1, 1}}, []Runner{a, b}, 3,
		func(r int) { rounds = r })
	if err != nil {
		t.Fatal(err)
	}
	want := [][]time.Duration{{3 * ms, 6 * ms}, {7 * ms, 1 * ms}}
	if fmt.Sprint(best) != fmt.Sprint(want) {
		t.Errorf("best = %v, want %v", best, want)
	}
	if got := strings.Join(log[:4], " "); got != "0:1 1:1 0:2 1:2" {
		t.Errorf("first round ran %s, want 0:1 1:1 0:2 1:2 (interleaved)", got)
	}
	if rounds != 3 {
		t.Errorf("progress saw %d rounds, want 3", rounds)
	}
	if _, err := Compare(context.Background(), []Shape{{1, 1, 1}}, []Runner{&scripted{fail: true, log: &log}}, 1, nil); err == nil {
		t.Error("a failing runner: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Compare(ctx, []Shape{{1, 1, 1}}, []Runner{a}, 1, nil); err == nil {
		t.Error("a cancelled context: no error")
	}
}

func TestGFLOPs(t *testing.T) {
	if g := GFLOPs(Shape{1000, 1000, 500}, time.Second); g != 1 {
		t.Errorf("GFLOPs = %v, want 1", g)
	}
}
