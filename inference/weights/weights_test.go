package weights

import (
	"reflect"
	"testing"
)

func TestMergeEarlierWins(t *testing.T) {
	a := Map{"x.w": {Data: []float32{1}, Shape: []int{1}}, "shared": {Data: []float32{1, 2}, Shape: []int{2}}}
	b := Map{"y.w": {Data: []float32{3}, Shape: []int{1}}, "shared": {Data: []float32{9}, Shape: []int{1}}}
	m := Merge(a, b)
	if got := m.Names(); !reflect.DeepEqual(got, []string{"shared", "x.w", "y.w"}) {
		t.Fatalf("names %v", got)
	}
	v, sh, err := m.Float32("shared")
	if err != nil || len(v) != 2 || sh[0] != 2 {
		t.Fatalf("shared: %v %v %v (the first source must win)", v, sh, err)
	}
	if _, _, err := m.Float32("missing"); err == nil {
		t.Fatal("missing tensor must fail")
	}
	if _, ok := m.Shape("y.w"); !ok {
		t.Fatal("y.w shape")
	}
}

func TestShapesStripsPrefix(t *testing.T) {
	m := Map{"model.a": {Shape: []int{2}}, "model.b": {Shape: []int{3, 4}}, "other.c": {Shape: []int{1}}}
	got := Shapes(m, "model.")
	want := map[string][]int{"a": {2}, "b": {3, 4}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}
