package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// batchOutputs are the files generate writes for --out out and n images.
func batchOutputs(out string, n int) []string {
	return generateFlags{out: out, batch: n, prompts: repeated{"p"}}.outputs()
}

func TestOutputNames(t *testing.T) {
	for _, tc := range []struct {
		out  string
		n    int
		want []string
	}{
		{"a/fox.png", 1, []string{"a/fox.png"}},
		{"a/fox.png", 2, []string{"a/fox-1.png", "a/fox-2.png"}},
		{"fox.PNG", 10, []string{"fox-01.PNG", "fox-02.PNG", "fox-03.PNG", "fox-04.PNG", "fox-05.PNG", "fox-06.PNG", "fox-07.PNG", "fox-08.PNG", "fox-09.PNG", "fox-10.PNG"}},
	} {
		if got := batchOutputs(tc.out, tc.n); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s, %d images: %q, want %q", tc.out, tc.n, got, tc.want)
		}
	}
}

// --batch 2 writes two numbered PNGs of one noise draw, each with the web
// UI's batch fields; two --prompt flags give each image its prompt.
func TestGenerateBatch(t *testing.T) {
	model := golden.Path(t, "tiny_diffusers")
	for _, tc := range []struct {
		name    string
		args    []string
		prompts []string
	}{
		{"batch", []string{"--prompt", "a cat", "--batch", "2"}, []string{"a cat", "a cat"}},
		{"prompt per image", []string{"--prompt", "a cat", "--prompt", "a dog"}, []string{"a cat", "a dog"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.png")
			var stdout, stderr bytes.Buffer
			args := append([]string{"--model", model, "--steps", "2", "--sampler", "ddim", "--seed", "5",
				"--width", "32", "--height", "32", "--out", out}, tc.args...)
			if err := runGenerate(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s written for a batch: %v", out, err)
			}
			var pixels [][]byte
			for i, path := range batchOutputs(out, 2) {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				pixels = append(pixels, data)
				chunks, err := export.TextChunks(data)
				if err != nil {
					t.Fatal(err)
				}
				params := chunks[export.ParametersKey]
				for _, want := range []string{tc.prompts[i] + "\n", "Seed: 5,", "Batch size: 2", fmt.Sprintf("Batch pos: %d", i)} {
					if !strings.Contains(params, want) {
						t.Errorf("%s: parameters %q lack %q", path, params, want)
					}
				}
				if !strings.Contains(stdout.String(), path+":") {
					t.Errorf("stdout %q does not name %s", stdout.String(), path)
				}
			}
			if bytes.Equal(pixels[0], pixels[1]) {
				t.Error("the two images are the same")
			}
		})
	}
}

func TestGenerateBatchErrors(t *testing.T) {
	base := []string{"--model", "m", "--out", "x.png"}
	for _, tc := range []struct {
		name  string
		args  []string
		inErr string
	}{
		{"zero", []string{"--prompt", "a", "--batch", "0"}, "--batch 0"},
		{"too many", []string{"--prompt", "a", "--batch", fmt.Sprint(pipeline.MaxBatch + 1)}, "--batch"},
		{"prompts and batch disagree", []string{"--prompt", "a", "--prompt", "b", "--batch", "3"}, "one per image"},
	} {
		var stderr bytes.Buffer
		_, err := parseGenerateFlags(append(base, tc.args...), &stderr)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.inErr) {
			t.Errorf("%s: error %v, want a usage error about %q", tc.name, err, tc.inErr)
		}
	}
	many := promptFlags(pipeline.MaxBatch + 1)
	var stderr bytes.Buffer
	if _, err := parseGenerateFlags(append(base, many...), &stderr); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "prompts") {
		t.Errorf("%d prompts: error %v", pipeline.MaxBatch+1, err)
	}
}

// promptFlags returns n --prompt flags.
func promptFlags(n int) []string {
	var args []string
	for i := range n {
		args = append(args, "--prompt", fmt.Sprint("p", i))
	}
	return args
}

// DDIM runs CompVis's schedule, one more step than asked where the steps
// do not divide 1000: progress counts the steps run, the PNG records the
// steps asked (as the web UI does) and the result line says both.
func TestGenerateDDIMExtraStep(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.png")
	var stdout, stderr bytes.Buffer
	args := []string{"--model", golden.Path(t, "tiny_diffusers"), "--prompt", "a cat", "--steps", "7", "--sampler", "ddim",
		"--seed", "1", "--width", "32", "--height", "32", "--out", out}
	if err := runGenerate(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "step 8/8") || strings.Contains(stderr.String(), "/7 ") {
		t.Errorf("stderr does not count the 8 steps run:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "7 steps (8 run)") {
		t.Errorf("stdout %q does not say 7 steps asked, 8 run", stdout.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := export.TextChunks(data)
	if err != nil {
		t.Fatal(err)
	}
	if p := chunks[export.ParametersKey]; !strings.Contains(p, "Steps: 7,") {
		t.Errorf("parameters %q do not record the 7 steps asked", p)
	}
}
