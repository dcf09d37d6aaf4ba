// Package attention is multi-head scaled dot-product attention on float32
// slices, forward and backward, tiled with an online softmax so that no
// full score matrix is ever held (FlashAttention: Dao et al. 2022,
// arXiv:2205.14135; the backward loop order of FlashAttention-2,
// arXiv:2307.08691).
//
// Legend: B batch, Tq query tokens, Tk key tokens, H heads, Dh query/key
// width per head, Dv value width per head. Inputs are token-major as the
// models produce them: q [B, Tq, H*Dh], k [B, Tk, H*Dh], v [B, Tk, H*Dv];
// the output is [B, Tq, H*Dv]. For each batch b and head h:
//
//	S = scale * Q Kᵀ          // [Tq, Tk]
//	P = softmax(S) row-wise   // keys j > i masked out when causal
//	O = P V                   // [Tq, Dv]
//
// Forward keeps only the per-row log-sum-exp L = m + log Σ exp(S - m)
// for Backward, which recomputes P = exp(S - L) tile by tile:
//
//	dV = Pᵀ dO, dP = dO Vᵀ, D = rowsum(dO ∘ O),
//	dS = P ∘ (dP - D), dQ = scale dS K, dK = scale dSᵀ Q.
//
// Work is split into (head, query block) tasks for Forward and (head, key
// block) tasks for Backward, handed to the workers of a Runner. Working
// memory is a few tiles per worker plus the packed keys and values of the
// heads in flight, never O(T²); it comes from the caller's Buffers, so a
// loop of calls reuses it.
//
// Scores are kept as base-2 logits (queries pre-multiplied by
// scale·log2 e), so the softmax needs only 2^x, a cheaper polynomial than
// e^x; Exp is the general float32 e^x.
//
// On amd64 (without the purego tag) the tile products, the softmax and the
// exponentials run in assembly, chosen once from CPUID: on ZMM registers
// where the CPU has AVX512F, else on YMM where it has AVX2 and FMA;
// elsewhere the same algorithm runs in portable Go, correct but several
// times slower.
package attention

import "fmt"

// Runner runs loops in parallel; backend.Backend satisfies it.
type Runner interface {
	// Threads is the number of workers Parallel uses.
	Threads() int
	// Parallel splits [0, n) into at most Threads() chunks, runs fn on
	// each concurrently and returns when all are done.
	Parallel(n int, fn func(lo, hi int))
}

// Problem describes one attention call.
type Problem struct {
	B, Tq, Tk int // batch, query tokens, key (and value) tokens
	Heads     int // H
	Dh, Dv    int // per-head width of queries/keys and of values
	Scale     float32
	Causal    bool // query i sees keys j <= i; needs Tq == Tk
}

// Check reports whether the problem is well formed.
func (p Problem) Check() error {
	switch {
	case p.B < 1 || p.Tq < 1 || p.Tk < 1 || p.Heads < 1 || p.Dh < 1 || p.Dv < 1:
		return fmt.Errorf("attention: sizes must be positive: %+v", p)
	case p.Causal && p.Tq != p.Tk:
		return fmt.Errorf("attention: causal needs Tq == Tk, got Tq=%d Tk=%d", p.Tq, p.Tk)
	case !(p.Scale > 0) || p.Scale > 1e30:
		return fmt.Errorf("attention: scale must be positive and finite, got %v", p.Scale)
	}
	return nil
}

// lens are the lengths q, k, v and out must have.
func (p Problem) lens() (q, k, v, out int) {
	return p.B * p.Tq * p.Heads * p.Dh, p.B * p.Tk * p.Heads * p.Dh,
		p.B * p.Tk * p.Heads * p.Dv, p.B * p.Tq * p.Heads * p.Dv
}

// LSELen is the length of the log-sum-exp slice: one value per (b, h, query).
func (p Problem) LSELen() int { return p.B * p.Heads * p.Tq }

// Flops is the conventional count of forward floating-point operations,
// 4·B·H·Tq·Tk·Dh (two products of 2·Tq·Tk·D each, with Dv = Dh). Backward
// is about 2.5 times this.
func (p Problem) Flops() float64 {
	return 2 * float64(p.B) * float64(p.Heads) * float64(p.Tq) * float64(p.Tk) * float64(p.Dh+p.Dv)
}

func checkLen(name string, s []float32, n int) error {
	if len(s) != n {
		return fmt.Errorf("attention: %s has %d values, want %d", name, len(s), n)
	}
	return nil
}

func (p Problem) checkSlices(q, k, v, out []float32) error {
	if err := p.Check(); err != nil {
		return err
	}
	nq, nk, nv, no := p.lens()
	for _, c := range []struct {
		name string
		s    []float32
		n    int
	}{{"q", q, nq}, {"k", k, nk}, {"v", v, nv}, {"out", out, no}} {
		if err := checkLen(c.name, c.s, c.n); err != nil {
			return err
		}
	}
	return nil
}

// Buffers lends working memory, so that repeated calls reuse it instead of
// allocating it anew (ops.Engine's scratch pool is one). Get returns n
// floats with any contents; Put takes back a slice that Get returned, once
// the call is done with it. It must be safe for concurrent use.
type Buffers interface {
	Get(n int) []float32
	Put(b []float32)
}

// get returns n floats from buf, or newly allocated when buf is nil.
func get(buf Buffers, n int) []float32 {
	if buf == nil {
		return make([]float32, n)
	}
	return buf.Get(n)[:n]
}

// put hands b back to buf, if any.
func put(buf Buffers, b []float32) {
	if buf != nil {
		buf.Put(b)
	}
}

// Forward computes out = softmax(scale·q·kᵀ)·v per batch and head. When
// lse is not nil (length LSELen) it receives the per-row log-sum-exp that
// Backward needs. Its working memory comes from buf (nil: allocated).
func Forward(r Runner, buf Buffers, p Problem, q, k, v, out, lse []float32) error {
	return forward(pick(), r, buf, p, q, k, v, out, lse)
}

// Backward computes the gradients of the inputs from dout, the gradient of
// out. out and lse are those of the Forward call. dq, dk and dv are
// overwritten; any of them may be nil when that gradient is not wanted.
// Its working memory comes from buf (nil: allocated).
func Backward(r Runner, buf Buffers, p Problem, q, k, v, out, lse, dout, dq, dk, dv []float32) error {
	return backward(pick(), r, buf, p, q, k, v, out, lse, dout, dq, dk, dv)
}
