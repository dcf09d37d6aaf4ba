package tensor

import (
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

func TestNewChecksSize(t *testing.T) {
	if _, err := New(make([]float32, 5), 2, 3); err == nil || !strings.Contains(err.Error(), "[2 3]") {
		t.Fatalf("want a size error naming the shape, got %v", err)
	}
	x, err := New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if x.Size() != 6 || x.Rank() != 2 || x.Dim(-1) != 3 || x.Dim(0) != 2 || x.RequiresGrad() {
		t.Fatalf("bad tensor %v size %d", x, x.Size())
	}
	// Shape returns a copy: mutating it must not change the tensor.
	s := x.Shape()
	s[0] = 99
	if x.Dim(0) != 2 {
		t.Fatal("Shape leaked its backing array")
	}
}

func TestDataSharesBacking(t *testing.T) {
	buf := []float32{1, 2, 3, 4}
	x := MustNew(buf, 4)
	x.Data()[2] = 30
	if buf[2] != 30 {
		t.Fatal("Data must return the backing slice, not a copy")
	}
}

func TestReshapeSharesNodeAndGradient(t *testing.T) {
	p, err := NewParam([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reshape(4, 2); err == nil {
		t.Fatal("reshape to a different size must fail")
	}
	v, err := p.Reshape(3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if v.Node() != p.Node() || !v.RequiresGrad() {
		t.Fatal("reshape must share the node")
	}
	AccGrad(v.Node(), []float32{1, 0, 2, 0, 3, 0})
	AccGrad(p.Node(), []float32{1, 1, 1, 1, 1, 1})
	got := p.Grad()
	want := []float32{2, 1, 3, 1, 4, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("grad %v, want %v", got, want)
		}
	}
	p.ZeroGrad()
	if p.Grad() != nil {
		t.Fatal("ZeroGrad must drop the gradient")
	}
}

func TestFromNodeAndDetach(t *testing.T) {
	if _, err := FromNode(nil, 1); err == nil {
		t.Fatal("nil node must fail")
	}
	d := mat.NewDense[float32](mat.WithShape(2, 3), mat.WithBacking([]float32{1, 2, 3, 4, 5, 6}), mat.WithGrad(true))
	if _, err := FromNode(d, 7); err == nil {
		t.Fatal("size mismatch must fail")
	}
	x, err := FromNode(d, 6)
	if err != nil {
		t.Fatal(err)
	}
	det := x.Detach()
	if det.RequiresGrad() || det.Data()[5] != 6 {
		t.Fatal("Detach must give a constant view of the same values")
	}
	// Gradients into a node of another 2-D layout keep that layout.
	AccGrad(x.Node(), []float32{1, 2, 3, 4, 5, 6})
	if sh := x.Node().Grad().Shape(); sh[0] != 2 || sh[1] != 3 {
		t.Fatalf("gradient shape %v, want the node's [2 3]", sh)
	}
}

func TestNumelAndSameShape(t *testing.T) {
	if Numel(nil) != 1 || Numel([]int{2, 3, 4}) != 24 || Numel([]int{2, -1}) != -1 {
		t.Fatal("Numel")
	}
	if !SameShape([]int{1, 2}, []int{1, 2}) || SameShape([]int{1, 2}, []int{2, 1}) || SameShape([]int{1}, []int{1, 1}) {
		t.Fatal("SameShape")
	}
}

// lender is a Lender whose Lend counts its loans.
type lender struct {
	*mat.Dense[float32]
	lent, back int
}

func (l *lender) Lend() ([]float32, func()) {
	l.lent++
	return []float32{7, 8}, func() { l.back++ }
}

// Borrow uses a Lender's Lend and gives its buffer back on release; any
// other node lends its own values.
func TestBorrow(t *testing.T) {
	plain := MustNew([]float32{1, 2}, 2)
	data, release := plain.Borrow()
	if &data[0] != &plain.Data()[0] {
		t.Error("a plain tensor's Borrow copies its values")
	}
	release()
	l := &lender{Dense: Leaf([]float32{1, 2})}
	lt, err := FromNode(l, 2)
	if err != nil {
		t.Fatal(err)
	}
	data, release = lt.Borrow()
	if !slices.Equal(data, []float32{7, 8}) || l.lent != 1 || l.back != 0 {
		t.Errorf("Borrow = %v, lent %d, back %d; want the Lender's values, lent once", data, l.lent, l.back)
	}
	release()
	if l.back != 1 {
		t.Errorf("release gave %d buffers back, want 1", l.back)
	}
}
