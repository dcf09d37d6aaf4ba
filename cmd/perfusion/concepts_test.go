package main

import (
	"bytes"
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
)

func writeTestConcept(t *testing.T, path, name string) {
	t.Helper()
	thumb, err := conceptfile.Thumbnail(image.NewGray(image.Rect(0, 0, 10, 10)))
	if err != nil {
		t.Fatal(err)
	}
	c := &conceptfile.Concept{
		Header: conceptfile.Header{Name: name, Superclass: "teddy", SuperclassToken: 16452, Beta: 0.7, Tau: 0.15,
			BaseModel: "6ce0161689", Covariance: "k1", Training: []byte(`{"steps":400}`)},
		Embedding: []float32{3, 4}, TargetInput: []float32{0, 1},
		Layers:    []conceptfile.Layer{{Name: "middle_block.1.transformer_blocks.0.attn2", OutK: []float32{1, 0, 0}, OutV: []float32{0, 2, 0}}},
		Thumbnail: thumb,
	}
	if err := conceptfile.WriteFile(path, c); err != nil {
		t.Fatal(err)
	}
}

func TestConceptsListAndShow(t *testing.T) {
	dir := t.TempDir()
	writeTestConcept(t, filepath.Join(dir, "hugsy.concept"), "hugsy")
	os.WriteFile(filepath.Join(dir, "broken.concept"), []byte("not a concept"), 0o644)
	var out bytes.Buffer
	if err := runConcepts(context.Background(), []string{"list", "--dir", dir}, &out, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"2 concept(s)", "hugsy", "teddy", "6ce0161689", "broken", "unreadable"} {
		if !strings.Contains(s, want) {
			t.Errorf("list output lacks %q:\n%s", want, s)
		}
	}
	for _, arg := range []string{filepath.Join(dir, "hugsy.concept"), "hugsy"} {
		out.Reset()
		if err := runConcepts(context.Background(), []string{"show", "--dir", dir, arg}, &out, new(bytes.Buffer)); err != nil {
			t.Fatal(err)
		}
		s = out.String()
		for _, want := range []string{"<hugsy>", `"teddy" (token 16452)`, "beta 0.7, tau 0.15", "norm 5", "10×10 PNG", "|o*_V| 2", `"steps": 400`} {
			if !strings.Contains(s, want) {
				t.Errorf("show %s lacks %q:\n%s", arg, want, s)
			}
		}
	}
	err := runConcepts(context.Background(), []string{"show", "--dir", dir, "broken"}, &out, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "not a Perfusion concept file") {
		t.Errorf("show broken: %v", err)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"show"}, {"list", "extra"}} {
		if err := runConcepts(context.Background(), args, new(bytes.Buffer), new(bytes.Buffer)); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
	out.Reset()
	if err := runConcepts(context.Background(), []string{"list", "--dir", filepath.Join(dir, "none")}, &out, new(bytes.Buffer)); err != nil || !strings.Contains(out.String(), "No concept library") {
		t.Errorf("missing library: %v %q", err, out.String())
	}
}
