package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// goldenRun is the golden tiny txt2img run (pipeline_config.json).
type goldenRun struct {
	Prompts      []string `json:"prompts"`
	Negative     string   `json:"negative_prompt"`
	Steps        int      `json:"ddim_steps_requested"`
	StepsRun     int      `json:"ddim_steps_actual"` // DDIM may run one more than asked
	CFG          float64  `json:"cfg_scale"`
	InitialNoise string   `json:"initial_noise"`
	ImageShape   []int    `json:"image_shape_nhwc"` // [B, H, W, 3]
}

func readGoldenRun(t *testing.T) (goldenRun, string) {
	t.Helper()
	var g goldenRun
	golden.JSON(t, "pipeline_config.json", &g)
	m := regexp.MustCompile(`manual_seed\((\d+)\)`).FindStringSubmatch(g.InitialNoise)
	if m == nil || len(g.Prompts) == 0 || len(g.ImageShape) != 4 || g.ImageShape[0] != len(g.Prompts) || g.StepsRun < 1 {
		t.Fatalf("pipeline_config.json: unexpected %+v", g)
	}
	return g, m[1]
}

// generate on the tiny golden model (diffusers folder) writes the golden
// images, with their settings in each PNG's parameters chunk: one prompt
// with --batch when every row has the same prompt, else a --prompt per row.
func TestGenerateGoldenPNG(t *testing.T) {
	g, seed := readGoldenRun(t)
	b, h, w := g.ImageShape[0], g.ImageShape[1], g.ImageShape[2]
	out := filepath.Join(t.TempDir(), "tiny.png")
	var stdout, stderr bytes.Buffer
	args := []string{"--model", golden.Path(t, "tiny_diffusers"), "--negative", g.Negative,
		"--seed", seed, "--steps", fmt.Sprint(g.Steps), "--cfg", fmt.Sprint(g.CFG), "--sampler", "DDIM",
		"--width", fmt.Sprint(w), "--height", fmt.Sprint(h), "--out", out}
	if slices.Equal(g.Prompts, slices.Repeat(g.Prompts[:1], b)) {
		args = append(args, "--prompt", g.Prompts[0], "--batch", fmt.Sprint(b))
	} else {
		for _, p := range g.Prompts {
			args = append(args, "--prompt", p)
		}
	}
	if err := runGenerate(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
	}
	f := golden.Open(t, "pipeline_io.safetensors")
	want, _, err := f.Bytes("image_uint8_nhwc")
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != b*h*w*3 {
		t.Fatalf("image_uint8_nhwc has %d values, want %d", len(want), b*h*w*3)
	}
	outs := []string{out}
	if b > 1 {
		outs = batchOutputs(out, b)
	}
	for i, path := range outs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		comparePNG(t, path, data, want[i*h*w*3:(i+1)*h*w*3], w, h)
		chunks, err := export.TextChunks(data)
		if err != nil {
			t.Fatal(err)
		}
		params := chunks[export.ParametersKey]
		for _, want := range []string{g.Prompts[i], fmt.Sprintf("Steps: %d", g.Steps), "Sampler: DDIM", fmt.Sprintf("CFG scale: %g", g.CFG),
			"Seed: " + seed, fmt.Sprintf("Size: %dx%d", w, h), "Model: tiny_diffusers"} {
			if !strings.Contains(params, want) {
				t.Errorf("%s: parameters %q lack %q", path, params, want)
			}
		}
		if !strings.Contains(stdout.String(), path) {
			t.Errorf("stdout %q does not name %s", stdout.String(), path)
		}
	}
	// Progress counts the steps run, which DDIM may make one more than
	// asked (CompVis's schedule).
	if lines := strings.Count(strings.TrimSpace(stderr.String()), "\n") + 1; lines < g.StepsRun {
		t.Errorf("stderr has %d lines, want a progress line per step:\n%s", lines, stderr.String())
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("step %d/%d", g.StepsRun, g.StepsRun)) || !strings.Contains(stderr.String(), "ETA") {
		t.Errorf("stderr lacks step progress up to %d/%d with ETA:\n%s", g.StepsRun, g.StepsRun, stderr.String())
	}
}

// comparePNG decodes a PNG and applies the golden rule for 8-bit images
// to it: opaque, w x h, every value at most 1 level off and at least 99%
// exact.
func comparePNG(t *testing.T, what string, data, want []byte, w, h int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("%s is %v, want %dx%d", what, b, w, h)
	}
	exact, worst := 0, 0
	for y := range h {
		for x := range w {
			r, gg, b, a := img.At(x, y).RGBA()
			if a != 0xffff {
				t.Fatalf("%s: pixel %d,%d not opaque", what, x, y)
			}
			for c, v := range []uint32{r >> 8, gg >> 8, b >> 8} {
				d := int(v) - int(want[(y*w+x)*3+c])
				if d == 0 {
					exact++
				}
				worst = max(worst, d, -d)
			}
		}
	}
	if frac := float64(exact) / float64(h*w*3); worst > 1 || frac < 0.99 {
		t.Errorf("%s vs golden: %.2f%% exact, worst %d levels off", what, 100*frac, worst)
	}
}

func TestGenerateRandomSeedPrinted(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.png")
	var stdout, stderr bytes.Buffer
	args := []string{"--model", golden.Path(t, "tiny_diffusers"), "--prompt", "a cat", "--steps", "1", "--width", "32", "--height", "32", "--out", out}
	if err := runGenerate(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^seed (\d+)$`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no seed printed:\n%s", stderr.String())
	}
	data, _ := os.ReadFile(out)
	chunks, _ := export.TextChunks(data)
	if p := chunks[export.ParametersKey]; !strings.Contains(p, "Seed: "+m[1]+",") || !strings.Contains(p, "Sampler: DPM++ 2M Karras") {
		t.Errorf("parameters %q, printed seed %s", p, m[1])
	}
}

func TestGenerateErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.png")
	model := golden.Path(t, "tiny_diffusers")
	base := []string{"--model", model, "--prompt", "a cat", "--steps", "2", "--out", out}
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		inErr string
	}{
		{"no prompt", []string{"--model", model, "--out", out}, true, "--prompt"},
		{"no out", []string{"--model", model, "--prompt", "a"}, true, "--out"},
		{"bad flag", append([]string{"--frobnicate"}, base...), true, "frobnicate"},
		{"stray argument", append(base, "cat"), true, "unexpected argument"},
		{"not png", []string{"--model", model, "--prompt", "a", "--out", filepath.Join(dir, "x.jpg")}, true, ".png"},
		{"bad sampler", append(base, "--sampler", "warp9"), true, "unknown sampler"},
		{"bad seed", append(base, "--seed", "-5"), true, "--seed"},
		{"huge size", append(base, "--width", "100032", "--height", "32"), true, "--width 100032"},
		{"odd size", []string{"--model", filepath.Join(dir, "none"), "--prompt", "a", "--height", "50", "--out", out}, true, "--height 50"},
		{"zero steps", append(base, "--steps", "0"), true, "--steps"},
		{"no such model", []string{"--model", filepath.Join(dir, "none.safetensors"), "--prompt", "a", "--out", out}, false, "none.safetensors"},
		{"no such folder", append(base[:len(base)-1], filepath.Join(dir, "sub", "x.png")), false, "does not exist"},
	} {
		var stdout, stderr bytes.Buffer
		err := runGenerate(context.Background(), tc.args, &stdout, &stderr)
		if err == nil || errors.Is(err, errUsage) != tc.usage || !strings.Contains(err.Error(), tc.inErr) {
			t.Errorf("%s: error %v (usage %v), want one about %q (usage %v)", tc.name, err, errors.Is(err, errUsage), tc.inErr, tc.usage)
		}
		if strings.Count(strings.TrimSpace(err.Error()), "\n") > 0 {
			t.Errorf("%s: error is not one line: %q", tc.name, err)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run wrote %s", out)
	}
}

// Ctrl-C (a cancelled context) stops the run and writes nothing.
func TestGenerateInterrupted(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.png")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelAfter{n: 2, cancel: cancel} // cancel while sampling
	args := []string{"--model", golden.Path(t, "tiny_diffusers"), "--prompt", "a cat", "--steps", "20", "--sampler", "euler",
		"--width", "32", "--height", "32", "--out", out}
	err := runGenerate(ctx, args, new(bytes.Buffer), w)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if strings.Contains(w.buf.String(), "step 20/20") {
		t.Errorf("ran to the end after the interrupt:\n%s", w.buf.String())
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Errorf("files left after the interrupt: %v", entries)
	}
}

// cancelAfter cancels once n step lines have been written to it.
type cancelAfter struct {
	buf    bytes.Buffer
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.buf.Write(p)
	if strings.Count(c.buf.String(), "step ") >= c.n {
		c.cancel()
	}
	return len(p), nil
}

func TestProgressPrinterTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progressPrinter{w: &buf, terminal: true, shown: -1}
	p.update("step 1/10")
	p.update("step 2/10 longer")
	p.update("step 3/10")
	p.done()
	if got, want := buf.String(), "\rstep 1/10\rstep 2/10 longer\rstep 3/10       \n"; got != want {
		t.Errorf("terminal output %q, want %q", got, want)
	}
	buf.Reset()
	p = &progressPrinter{w: &buf, shown: -1}
	for _, f := range []float64{0, 0.01, 0.05, 0.1, 0.15, 0.5, 1} {
		p.percent("loading", f)
	}
	if got := strings.Count(buf.String(), "\n"); got != 4 {
		t.Errorf("non-terminal loading progress printed %d lines, want 4 (0, 10, 50, 100%%):\n%s", got, buf.String())
	}
}

// A model without a vocabulary (here a diffusers folder without its
// tokenizer/) generates with the built-in CLIP vocabulary.
func TestGenerateWithoutVocabularyUsesBuiltIn(t *testing.T) {
	src := golden.Path(t, "tiny_diffusers")
	model := filepath.Join(t.TempDir(), "tiny_no_tokenizer")
	if err := os.Mkdir(model, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"model_index.json", "unet", "vae", "text_encoder", "scheduler"} {
		if err := os.Symlink(filepath.Join(src, name), filepath.Join(model, name)); err != nil {
			t.Skip("no symlinks:", err)
		}
	}
	for _, env := range []string{"HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"} {
		t.Setenv(env, t.TempDir())
	}
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	if _, err := tokenizer.Locate(model, ""); err == nil {
		t.Fatal("a vocabulary was found for the model; the test needs none")
	}
	out := filepath.Join(t.TempDir(), "x.png")
	var stderr bytes.Buffer
	err := runGenerate(context.Background(), []string{"--model", model, "--prompt", "a cat", "--steps", "2", "--sampler", "ddim",
		"--width", "32", "--height", "32", "--seed", "1", "--out", out}, new(bytes.Buffer), &stderr)
	if err != nil {
		t.Fatalf("generate without a vocabulary beside the model: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

// An error that lists what it checked (no vocabulary anywhere) prints as
// one line through oneLine, with its chain intact.
func TestNoVocabularyErrorOneLine(t *testing.T) {
	for _, env := range []string{"HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"} {
		t.Setenv(env, t.TempDir())
	}
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	_, err := tokenizer.Locate(filepath.Join(t.TempDir(), "model.safetensors"), "")
	if err == nil || !strings.Contains(err.Error(), "\n") {
		t.Fatalf("Locate: %v, want a multi-line error", err)
	}
	err = oneLine(fmt.Errorf("pipeline: %w", err))
	var nf *tokenizer.NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("error %v, want a *tokenizer.NotFoundError", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "Looked in:") {
		t.Errorf("error %q: want the whole explanation on one line", msg)
	}
}

// Seeds take 64 bits as torch.manual_seed does: the PNG records the full
// seed, and the noise, like torch's, depends on its low 32 bits only.
func TestGenerateSeedAbove32Bits(t *testing.T) {
	dir := t.TempDir()
	run := func(seed string) (pixels []byte, params string) {
		t.Helper()
		out := filepath.Join(dir, seed+".png")
		args := []string{"--model", golden.Path(t, "tiny_diffusers"), "--prompt", "a cat", "--steps", "2", "--sampler", "ddim",
			"--width", "32", "--height", "32", "--seed", seed, "--out", out}
		var stderr bytes.Buffer
		if err := runGenerate(context.Background(), args, new(bytes.Buffer), &stderr); err != nil {
			t.Fatalf("seed %s: %v\n%s", seed, err, stderr.String())
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				pixels = append(pixels, byte(r>>8), byte(g>>8), byte(bl>>8))
			}
		}
		chunks, err := export.TextChunks(data)
		if err != nil {
			t.Fatal(err)
		}
		return pixels, chunks[export.ParametersKey]
	}
	low, lowParams := run("42")
	high, highParams := run("18446744069414584362") // 2^64 - 2^32 + 42: low 32 bits 42
	other, _ := run("43")
	if !bytes.Equal(low, high) {
		t.Error("seeds with the same low 32 bits gave different images")
	}
	if bytes.Equal(low, other) {
		t.Error("seeds 42 and 43 gave the same image")
	}
	if !strings.Contains(highParams, "Seed: 18446744069414584362,") || !strings.Contains(lowParams, "Seed: 42,") {
		t.Errorf("parameters do not record the full seeds:\n%s\n%s", lowParams, highParams)
	}
	// A diffusers folder has no single file to hash.
	if strings.Contains(lowParams, "Model hash") {
		t.Errorf("parameters of a folder model have a hash: %s", lowParams)
	}
	var stderr bytes.Buffer
	err := runGenerate(context.Background(), []string{"--model", golden.Path(t, "tiny_diffusers"), "--prompt", "a", "--seed", "18446744073709551616",
		"--out", filepath.Join(dir, "x.png")}, new(bytes.Buffer), &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--seed 18446744073709551616") {
		t.Errorf("seed 2^64: %v, want a usage error", err)
	}
}
