package main

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// generate with --concept and --gate applies the concept (the image
// differs from the base model's) and records it in the PNG; concepts of
// another base model are refused.
func TestGenerateWithConcepts(t *testing.T) {
	model := golden.Path(t, "tiny_diffusers")
	ctx := context.Background()
	p, err := pipeline.Load(ctx, model, pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := concepts.BaseHash(ctx, model)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tubby := conceptstest.Write(t, p, dir, "tubby", "cat", base, 0.1)
	pot := conceptstest.Write(t, p, dir, "pot", "dog", base, 0.1)
	other := conceptstest.Write(t, p, t.TempDir(), "alien", "cat", "0123456789", 0.1)
	cache := t.TempDir()
	common := []string{"--model", model, "--seed", "5", "--steps", "2", "--width", "32", "--height", "32", "--cache", cache}
	run := func(out string, extra ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := runGenerate(ctx, append(append(slices.Clone(common), "--out", out), extra...), &stdout, &stderr)
		return stderr.String(), err
	}
	pixels := func(path string) []byte {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
			for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				b.Write([]byte{byte(r >> 8), byte(g >> 8), byte(bl >> 8)})
			}
		}
		return b.Bytes()
	}
	out := t.TempDir()
	baseOut, conceptOut, twoOut := filepath.Join(out, "base.png"), filepath.Join(out, "concept.png"), filepath.Join(out, "two.png")
	if msg, err := run(baseOut, "--prompt", "a photo of a <tubby>"); err == nil {
		t.Errorf("a prompt with an unknown concept ran:\n%s", msg)
	}
	if msg, err := run(baseOut, "--prompt", "a photo of a cat"); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	msg, err := run(conceptOut, "--prompt", "a photo of a <tubby>", "--concept", tubby, "--gate", "tubby=0.6,0.2", "--lock", "global")
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	if !strings.Contains(msg, "text covariance") {
		t.Errorf("no covariance progress on stderr:\n%s", msg)
	}
	if bytes.Equal(pixels(baseOut), pixels(conceptOut)) {
		t.Error("the concept changed nothing")
	}
	data, err := os.ReadFile(conceptOut)
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := export.TextChunks(data)
	if err != nil {
		t.Fatal(err)
	}
	if params := chunks[export.ParametersKey]; !strings.Contains(params, `Concepts: "tubby: beta 0.6 tau 0.2 locking global hash `) {
		t.Errorf("parameters do not record the concept:\n%s", params)
	}
	// Two concepts, one not in the prompt: a warning, and the file's gate.
	msg, err = run(twoOut, "--prompt", "a <tubby> in a garden", "--concept", tubby, "--concept", pot, "--multi", "exact")
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	if !strings.Contains(msg, "warning: concept pot is given but not written <pot>") {
		t.Errorf("no warning for a concept absent from the prompt:\n%s", msg)
	}
	if strings.Contains(msg, "text covariance:") {
		t.Errorf("C was computed again instead of read from the cache:\n%s", msg)
	}
	data, _ = os.ReadFile(twoOut)
	chunks, _ = export.TextChunks(data)
	if params := chunks[export.ParametersKey]; !strings.Contains(params, "pot: beta 0.7 tau 0.15") || !strings.Contains(params, "Concept multi: exact") {
		t.Errorf("parameters do not record both concepts:\n%s", params)
	}
	_, err = run(filepath.Join(out, "x.png"), "--prompt", "a <alien>", "--concept", other)
	if !errors.Is(err, conceptfile.ErrBaseMismatch) || !strings.Contains(err.Error(), "0123456789") || !strings.Contains(err.Error(), base) {
		t.Errorf("a concept of another base model: %v", err)
	}
}

// Bad concept flags fail before the model loads, with what is wrong.
func TestGenerateConceptFlagErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "bad.concept")
	if err := os.WriteFile(garbage, []byte("not a concept"), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--model", filepath.Join(dir, "none.safetensors"), "--out", filepath.Join(dir, "x.png")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--prompt", "a <tubby>"}, "the prompt uses <tubby> but no --concept file holds it"},
		{[]string{"--prompt", "a cat", "--gate", "tubby=0.7,0.15"}, "--gate tubby: no --concept file"},
		{[]string{"--prompt", "a cat", "--gate", "tubby=high"}, `"high" is not a number`},
		{[]string{"--prompt", "a cat", "--gate", "tubby=1.7,0.15"}, "β = 1.7"},
		{[]string{"--prompt", "a cat", "--gate", "tubby=0.7,0"}, "τ = 0"},
		{[]string{"--prompt", "a cat", "--gate", "tubby"}, "want NAME=BETA,TAU"},
		{[]string{"--prompt", "a cat", "--gate", "t=0.5,0.1,3"}, "NAME=BETA or NAME=BETA,TAU"},
		{[]string{"--prompt", "a cat", "--multi", "approx"}, "--multi"},
		{[]string{"--prompt", "a cat", "--lock", "both"}, "--lock"},
		{[]string{"--prompt", "a cat", "--concept", garbage}, "conceptfile"},
		{[]string{"--prompt", "a cat", "--concept", filepath.Join(dir, "missing.concept")}, "--concept"},
	} {
		var stdout, stderr bytes.Buffer
		err := runGenerate(context.Background(), append(slices.Clone(common), tc.args...), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
