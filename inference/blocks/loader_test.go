package blocks

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

func TestLoader(t *testing.T) {
	src := weights.Map{
		"m.a.weight":   {Data: make([]float32, 6), Shape: []int{2, 3}},
		"m.a.bias":     {Data: make([]float32, 2), Shape: []int{2}},
		"m.b.weight":   {Data: make([]float32, 4), Shape: []int{2, 2}},
		"m.buffer":     {Data: make([]float32, 1), Shape: []int{1}},
		"m.extra":      {Data: make([]float32, 1), Shape: []int{1}},
		"other.ignore": {Data: make([]float32, 1), Shape: []int{1}},
	}
	l := NewLoader(src, "toy", "m.")
	a := l.Sub("a")
	if a.Path() != "a" || a.Key("weight") != "m.a.weight" || !a.Has("bias") || a.Has("scale") {
		t.Errorf("Sub: path %q key %q", a.Path(), a.Key("weight"))
	}
	if w := a.Tensor("weight", 2, 3); !w.Valid() || !reflect.DeepEqual(w.Shape(), []int{2, 3}) {
		t.Errorf("weight: %v", w)
	}
	a.Tensor("bias", 2)
	if w := l.Sub("b").TensorAlt("weight", []int{2, 2, 1, 1}, []int{2, 2}); !reflect.DeepEqual(w.Shape(), []int{2, 2, 1, 1}) {
		t.Errorf("TensorAlt returned %v, want the first shape", w)
	}
	l.Ignore("buffer")
	if bad := l.Tensor("missing", 3); bad.Valid() {
		t.Error("missing tensor returned a valid Tensor")
	}
	if bad := a.Tensor("bias", 3); bad.Valid() {
		t.Error("misshapen tensor returned a valid Tensor")
	}
	err := l.Finish()
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Finish: %v", err)
	}
	want := []string{
		`missing tensor "m.missing" (want shape [3])`,
		`tensor "m.a.bias" has shape [2], want [3]`,
		`unexpected tensor "m.extra"`,
	}
	if !reflect.DeepEqual(le.Problems, want) {
		t.Errorf("problems:\n%q\nwant\n%q", le.Problems, want)
	}
	if !strings.HasPrefix(err.Error(), "load toy: 3 problem(s)") {
		t.Errorf("message: %v", err)
	}
	if wm := []Want{{Name: "m.missing", Shape: []int{3}}}; !reflect.DeepEqual(le.Missing, wm) {
		t.Errorf("Missing = %v, want %v", le.Missing, wm)
	}

	ok := NewLoader(src, "toy", "m.a.")
	ok.Tensor("weight", 2, 3)
	ok.Tensor("bias", 2)
	if err := ok.Finish(); err != nil {
		t.Errorf("complete load: %v", err)
	}
}

func TestExpected(t *testing.T) {
	load := func(src weights.Source) error {
		l := NewLoader(src, "toy", "m.")
		l.Ignore("buffer")
		LoadLinear(l, "lin", 3, 2, true)
		l.Sub("conv").TensorAlt("weight", []int{4, 3, 1, 1}, []int{4, 3})
		return l.Finish()
	}
	got, err := Expected(load)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"m.lin.weight": {2, 3}, "m.lin.bias": {2}, "m.conv.weight": {4, 3, 1, 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Expected = %v, want %v", got, want)
	}
	// The listed tensors load without problems.
	src := weights.Map{}
	for n, s := range got {
		src[n] = weights.Tensor{Data: make([]float32, tensor.Numel(s)), Shape: s}
	}
	if err := load(src); err != nil {
		t.Errorf("loading the expected tensors: %v", err)
	}
	if _, err := Expected(func(weights.Source) error { return errors.New("bad config") }); err == nil {
		t.Error("a config error was not reported")
	}
}

func TestLoadErrorTruncates(t *testing.T) {
	e := &LoadError{Model: "x"}
	for range 25 {
		e.Problems = append(e.Problems, "p")
	}
	if !strings.Contains(e.Error(), "and 5 more") {
		t.Errorf("long error not truncated: %v", e)
	}
}

func TestFields(t *testing.T) {
	f, err := ParseFields([]byte(`{"config": {"params": {"a": 1, "b": [1, 2], "c": null, "d": "s", "e": [3, 3]}}, "top": 0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	var top float32
	if !f.Float32("top", &top) || top != 0.5 {
		t.Errorf("top = %v", top)
	}
	in := f.Unwrap()
	var a int
	var b []int
	var d string
	if !in.Int("a", &a) || a != 1 || !in.Ints("b", &b) || len(b) != 2 || !in.String("d", &d) || d != "s" {
		t.Errorf("a %d b %v d %q", a, b, d)
	}
	c := 7
	if in.Int("c", &c) || c != 7 || in.Has("c") {
		t.Error("null field was read")
	}
	if v, ok := in.IntOrInts("a"); !ok || !reflect.DeepEqual(v, []int{1}) {
		t.Errorf("IntOrInts(a) = %v", v)
	}
	if v, ok := in.IntOrInts("e"); !ok || !reflect.DeepEqual(v, []int{3, 3}) {
		t.Errorf("IntOrInts(e) = %v", v)
	}
	if in.Err() != nil {
		t.Fatal(in.Err())
	}
	if in.Int("d", &a); in.Err() == nil || !strings.Contains(in.Err().Error(), `"d"`) {
		t.Errorf("type error not recorded: %v", in.Err())
	}
	if _, err := ParseFields([]byte(`[1]`)); err == nil {
		t.Error("array accepted as object")
	}
}

func TestParseShapeList(t *testing.T) {
	text := "# comment\nm.a.weight F32 [2, 3]\nm.ids I64 [1, 77]\nother.x F32 [4]\n\n"
	got, err := ParseShapeList(text, "m.")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"a.weight": {2, 3}, "ids": {1, 77}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := ParseShapeList("m.a F32 2,3", "m."); err == nil {
		t.Error("bad line accepted")
	}
}
