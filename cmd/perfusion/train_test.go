package main

import (
	"bytes"
	"context"
	"errors"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// discPhotos writes n small photos of a yellow disc into a new folder.
func discPhotos(t *testing.T, n int) string {
	t.Helper()
	return filepath.Dir(conceptstest.DiscPhotos(t, n, 40, "png")[0])
}

// train on the tiny golden model writes a concept file that reads back
// with the model's layers, and removes its resume file.
func TestTrainCommandTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on the tiny model")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "disc.concept")
	var stdout, stderr bytes.Buffer
	args := []string{"--model", golden.Path(t, "tiny_diffusers"), "--name", "disc", "--class", "toy",
		"--photos", discPhotos(t, 3), "--size", "32", "--steps", "20", "--out", out, "--cache", filepath.Join(dir, "cache")}
	if err := runTrain(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "disc.concept: concept <disc> (toy)") {
		t.Errorf("stdout %q", stdout.String())
	}
	c, err := conceptfile.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "disc" || c.Superclass != "toy" || len(c.Layers) == 0 || len(c.Embedding) != c.Dim || len(c.Thumbnail) == 0 || c.Covariance == "" {
		t.Errorf("concept file: %+v", c.Header)
	}
	if _, err := os.Stat(out + ".resume"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("resume file left behind: %v", err)
	}
	// The trained concept is usable on the model it was trained on.
	stdout.Reset()
	stderr.Reset()
	png := filepath.Join(dir, "disc.png")
	gen := []string{"--model", golden.Path(t, "tiny_diffusers"), "--prompt", "a photo of a <disc>", "--concept", out,
		"--steps", "2", "--width", "32", "--height", "32", "--seed", "1", "--cache", filepath.Join(dir, "cache"), "--out", png}
	if err := runGenerate(context.Background(), gen, &stdout, &stderr); err != nil {
		t.Fatalf("generate with the trained concept: %v\nstderr:\n%s", err, stderr.String())
	}
}

func TestTrainFlags(t *testing.T) {
	var stderr bytes.Buffer
	base := []string{"--model", "m", "--name", "disc", "--class", "toy", "--photos", "a.png,b.png", "--out", "x/disc.concept"}
	g, err := parseTrainFlags(append(base, "c.png"), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.photos) != 3 || g.resume != "x/disc.concept.resume" {
		t.Errorf("photos %v, resume %s", g.photos, g.resume)
	}
	s, err := g.settings(0)
	if err != nil || s.Preset != "quick" || s.Size != 256 {
		t.Errorf("default settings %+v %v", s, err)
	}
	if s, err := g.settings(64); err != nil || s.Size != 64 {
		t.Errorf("quick for a 64-px model: size %d (%v), want 64", s.Size, err)
	}
	g.preset, g.steps, g.size, g.batch = "paper", 7, 320, 6
	s, err = g.settings(0)
	if err != nil || s.Steps != 7 || s.Size != 320 || s.Batch != 6 || s.Batch%s.Micro != 0 {
		t.Errorf("overrides: %+v %v", s, err)
	}
	for _, bad := range [][]string{
		{"--model", "m"},
		append(slices.Clone(base[:len(base)-1]), "x/disc.png"),
		append(append([]string{}, base...), "--steps", "-1"),
		{"--model", "m", "--name", "bad name", "--class", "toy", "--photos", "a.png", "--out", "x.concept"},
	} {
		if _, err := parseTrainFlags(bad, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
	g.preset = "slow"
	if _, err := g.settings(0); !errors.Is(err, errUsage) {
		t.Errorf("unknown preset: %v", err)
	}
}
