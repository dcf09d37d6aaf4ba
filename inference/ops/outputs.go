package ops

// Outputs lends the float32 buffers that operators write their results
// into, so that a caller running the same forward pass again and again (a
// sampling loop) can recycle them instead of allocating fresh memory every
// call (see blocks.Arena). The ops never give buffers back: the lender
// decides when a result is dead.
type Outputs interface {
	// Output returns a zeroed buffer of length n, or nil to let the
	// operator allocate one itself.
	Output(n int) []float32
}

// WithOutputs returns a copy of e whose operators take their result
// buffers from o (nil: allocate them, as e does). The copy shares e's
// backend and scratch buffers; e itself is unchanged.
//
// Use it only for passes that build no gradient graph, or make sure that o
// never recycles a buffer a graph may still read: operators do not tell
// their lender whether a graph keeps their result.
func (e *Engine) WithOutputs(o Outputs) *Engine {
	c := *e
	c.out = o
	return &c
}

// output returns a zeroed buffer for an operator's result of n values:
// from the engine's Outputs where it has one, else a fresh allocation.
func (e *Engine) output(n int) []float32 {
	if e.out != nil {
		if b := e.out.Output(n); len(b) == n {
			return b
		}
	}
	return make([]float32, n)
}
