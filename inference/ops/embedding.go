package ops

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Embedding gathers rows of table [V, D]: the result has shape
// [shape..., D] with row i = table[ids[i]]. shape defaults to [len(ids)];
// its product must be len(ids). An id outside [0, V) is an error. The
// backward pass adds the output gradient rows into the table's gradient.
func (e *Engine) Embedding(table tensor.Tensor, ids []int, shape ...int) (tensor.Tensor, error) {
	if len(shape) == 0 {
		shape = []int{len(ids)}
	}
	if table.Rank() != 2 {
		return tensor.Tensor{}, dimsErr("embedding", table, fmt.Sprintf("ids shape %v", shape), "table must be [V, D]")
	}
	if tensor.Numel(shape) != len(ids) {
		return tensor.Tensor{}, dimsErr("embedding", table, fmt.Sprintf("ids shape %v", shape),
			fmt.Sprintf("shape holds %d ids, got %d", tensor.Numel(shape), len(ids)))
	}
	v := table.Dim(0)
	for i, id := range ids {
		if id < 0 || id >= v {
			return tensor.Tensor{}, fmt.Errorf("ops: embedding: id %d at %d out of range for table %v", id, i, table.Shape())
		}
	}
	out := append(append([]int(nil), shape...), table.Dim(1))
	f := &embedding{e: e, table: table, ids: append([]int(nil), ids...), d: table.Dim(1)}
	return e.run(f, out, AnyGrad(table))
}

type embedding struct {
	e     *Engine
	table tensor.Tensor // [V, D]
	ids   []int         // [N]
	d     int
}

func (f *embedding) Operands() []mat.Tensor { return Operands(f.table) }

func (f *embedding) Forward() (mat.Tensor, error) {
	t, d := f.table.Data(), f.d
	y := f.e.output(len(f.ids) * d) // [N, D]
	for i, id := range f.ids {
		copy(y[i*d:(i+1)*d], t[id*d:(id+1)*d])
	}
	return tensor.Leaf(y), nil
}

func (f *embedding) Backward(gy mat.Tensor) error {
	if !f.table.RequiresGrad() {
		return nil
	}
	g, d := tensor.Float32s(gy), f.d
	dt := f.e.scratchZero(f.table.Size()) // [V, D], dense as spago gradients are
	// parallel over column blocks: repeated ids never race
	f.e.par(d, 64, func(lo, hi int) {
		for i, id := range f.ids {
			dst, src := dt[id*d+lo:id*d+hi], g[i*d+lo:i*d+hi]
			for j, v := range src {
				dst[j] += v
			}
		}
	})
	f.e.accGrad(f.table, dt)
	return nil
}
