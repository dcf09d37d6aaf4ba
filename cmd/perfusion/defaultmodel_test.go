package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/assets"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/train"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// useTempCache points the user cache folder, where the default model is
// installed, at a new temporary folder and returns the install root.
func useTempCache(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", dir)
	t.Setenv("HOME", dir) // macOS: ~/Library/Caches
	root, err := assets.DefaultModelCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(root, dir) {
		t.Fatalf("cache folder %s is outside %s", root, dir)
	}
	return root
}

// installedDefault is the one folder under root the default model was
// installed in.
func installedDefault(t *testing.T, root string) string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(root, "*", "model_index.json"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("installed default models %q (%v), want one", dirs, err)
	}
	return filepath.Dir(dirs[0])
}

// generate without --model uses the default model at its native size.
func TestGenerateDefaultModel(t *testing.T) {
	root := useTempCache(t)
	out := filepath.Join(t.TempDir(), "cat.png")
	var stdout, stderr bytes.Buffer
	args := []string{"--prompt", "cat face on a blue background", "--steps", "3", "--sampler", "ddim", "--seed", "3", "--out", out}
	if err := runGenerate(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
	}
	p, err := pipeline.Load(context.Background(), installedDefault(t, root), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := p.NativeSize()
	size := fmt.Sprintf("%dx%d", n, n)
	if !strings.Contains(stderr.String(), defaultModelNote) {
		t.Errorf("stderr does not say the default model is used:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "cat.png: "+size+", seed 3") {
		t.Errorf("stdout %q, want a %s image", stdout.String(), size)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != n || b.Dy() != n {
		t.Errorf("image %v, want %s", b, size)
	}
	chunks, err := export.TextChunks(data)
	if err != nil {
		t.Fatal(err)
	}
	params := chunks[export.ParametersKey]
	for _, want := range []string{"Size: " + size, "Model: " + assets.DefaultModelName} {
		if !strings.Contains(params, want) {
			t.Errorf("parameters %q lack %q", params, want)
		}
	}

	// An explicit size still wins.
	stdout.Reset()
	args = append(args, "--width", "32", "--height", "48")
	if err := runGenerate(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "32x48") {
		t.Errorf("stdout %q, want a 32x48 image", stdout.String())
	}
}

// train without --model trains on the default model at its native size,
// and a concept it writes is tied to it. Whether a few steps pass the
// self-check depends on the trained weights, so a concept that learned too
// little (train.ErrNotLearned) only skips the second half.
func TestTrainDefaultModel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on the default model")
	}
	root := useTempCache(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "disc.concept")
	var stdout, stderr bytes.Buffer
	args := []string{"--name", "disc", "--class", "face", "--photos", discPhotos(t, 3), "--steps", "2",
		"--out", out, "--cache", filepath.Join(dir, "cache")}
	err := runTrain(context.Background(), args, &stdout, &stderr)
	if err != nil && !errors.Is(err, train.ErrNotLearned) {
		t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
	}
	p, err2 := pipeline.Load(context.Background(), installedDefault(t, root), pipeline.LoadOptions{})
	if err2 != nil {
		t.Fatal(err2)
	}
	native := fmt.Sprintf("preset, %d px", p.NativeSize())
	if !strings.Contains(stderr.String(), defaultModelNote) || !strings.Contains(stderr.String(), native) {
		t.Errorf("stderr does not say it trains on the default model at its native size (%q):\n%s", native, stderr.String())
	}
	if err != nil {
		t.Skipf("no concept to check: %v", err)
	}
	c, err := conceptfile.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	base, err := concepts.BaseHash(context.Background(), installedDefault(t, root))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckBase(base); err != nil {
		t.Errorf("the concept is not tied to the default model: %v", err)
	}
	png := filepath.Join(dir, "disc.png")
	gen := []string{"--prompt", "a <disc>", "--concept", out, "--steps", "2", "--seed", "1",
		"--cache", filepath.Join(dir, "cache"), "--out", png}
	if err := runGenerate(context.Background(), gen, &stdout, &stderr); err != nil {
		t.Fatalf("generate with the concept: %v\nstderr:\n%s", err, stderr.String())
	}
}

// The help texts say what runs without --model.
func TestDefaultModelHelp(t *testing.T) {
	c, stdout, _, _ := testCLI()
	c.usage(stdout)
	if !strings.Contains(stdout.String(), "default model") {
		t.Errorf("usage does not mention the default model:\n%s", stdout)
	}
	for _, parse := range []func([]string, *bytes.Buffer) error{
		func(a []string, w *bytes.Buffer) error { _, err := parseGenerateFlags(a, w); return err },
		func(a []string, w *bytes.Buffer) error { _, err := parseTrainFlags(a, w); return err },
	} {
		var help bytes.Buffer
		_ = parse([]string{"-h"}, &help)
		if !strings.Contains(help.String(), "built-in emoji model") || strings.Contains(help.String(), "diffusers folder (required)") {
			t.Errorf("--model help:\n%s", help.String())
		}
	}
}
