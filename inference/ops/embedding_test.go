package ops

import (
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

func TestEmbedding(t *testing.T) {
	e := testEngine()
	table := param(t, newRand(90), 11, 6)
	ids := []int{3, 0, 10, 3, 3, 7} // repeats: gradients add up
	y := must(t)(e.Embedding(table, ids, 2, 3))
	if !tensor.SameShape(y.Shape(), []int{2, 3, 6}) {
		t.Fatalf("shape %v", y.Shape())
	}
	want := make([]float64, 0, y.Size())
	for _, id := range ids {
		want = append(want, f64(table.Data()[id*6:(id+1)*6])...)
	}
	checkClose(t, "embedding", y.Data(), want, 0, 0)
	gradCheck(t, func() (tensor.Tensor, error) { return e.Embedding(table, ids, 2, 3) }, named{"table", table})

	flat := must(t)(e.Embedding(table, ids))
	if !tensor.SameShape(flat.Shape(), []int{6, 6}) {
		t.Fatalf("default shape %v", flat.Shape())
	}
	for _, bad := range [][]int{{11}, {-1}} {
		_, err := e.Embedding(table, bad)
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("id %v: error %v", bad, err)
		}
	}
	if _, err := e.Embedding(table, ids, 4, 2); err == nil || !strings.Contains(err.Error(), "[4 2]") {
		t.Errorf("shape [4 2] for 6 ids: error %v", err)
	}
}
