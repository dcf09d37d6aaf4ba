package pipeline

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// smallRequest is a quick generation on the tiny model.
func smallRequest(p *Pipeline) Request {
	// At least 16 pixels a side: on latents of a pixel or two, group norms
	// see so few values that rounding differences blow up.
	m := p.SizeMultiple()
	side := (16 + m - 1) / m * m
	return Request{Prompt: "a red fox", Seed: 7, Steps: 3, CFG: 5, Sampler: "euler_a", Width: 2 * side, Height: side}
}

func TestProgressCallbacks(t *testing.T) {
	p := tinyPipeline(t)
	for _, previews := range []bool{false, true} {
		r := smallRequest(p)
		r.Previews = previews
		var got []Progress
		res, err := p.Generate(context.Background(), r, func(pr Progress) { got = append(got, pr) })
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != r.Steps {
			t.Fatalf("previews=%v: %d progress calls, want %d", previews, len(got), r.Steps)
		}
		for i, pr := range got {
			if pr.Step != i+1 || pr.Total != r.Steps || pr.ETA < 0 || pr.Elapsed <= 0 {
				t.Errorf("call %d: %+v", i, pr)
			}
			if previews != (pr.Preview != nil) {
				t.Errorf("call %d: preview %v with Previews %v", i, pr.Preview != nil, previews)
			}
			if pr.Preview != nil {
				f := p.latentFactor()
				if b := pr.Preview.Bounds(); b.Dx() != r.Width/f || b.Dy() != r.Height/f {
					t.Errorf("preview %v, want latent size %dx%d", b, r.Width/f, r.Height/f)
				}
			}
		}
		if got[len(got)-1].ETA != 0 {
			t.Errorf("last ETA %v, want 0", got[len(got)-1].ETA)
		}
		if len(res.Images) != 1 || res.Images[0].Bounds().Dx() != r.Width || res.Images[0].Bounds().Dy() != r.Height {
			t.Errorf("images %v", res.Images)
		}
	}
}

// The same request gives the same image; another seed another one; a
// batch of two repeats the prompt over two noise draws.
func TestSeedsAndBatch(t *testing.T) {
	p := tinyPipeline(t)
	r := smallRequest(p)
	a, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Generate(context.Background(), r, nil)
	if !equal(a.Latents.Data(), b.Latents.Data()) {
		t.Error("same request, different latents")
	}
	r.Seed++
	c, _ := p.Generate(context.Background(), r, nil)
	if equal(a.Latents.Data(), c.Latents.Data()) {
		t.Error("another seed, same latents")
	}
	r.BatchSize = 2
	d, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := len(a.Latents.Data())
	if len(d.Images) != 2 || d.Latents.Dim(0) != 2 || equal(d.Latents.Data()[:n], d.Latents.Data()[n:]) {
		t.Errorf("batch of 2: %d images, latents %v, halves equal %v", len(d.Images), d.Latents, equal(d.Latents.Data()[:n], d.Latents.Data()[n:]))
	}
}

// CFG 1 skips the unconditional branch: the result is the conditional
// prediction alone, which equals e_u + 1*(e_c - e_u) up to rounding.
func TestCFGOne(t *testing.T) {
	p := tinyPipeline(t)
	r := smallRequest(p)
	r.Sampler, r.CFG, r.Steps = "ddim", 1, 4
	calls := map[string]int{}
	p.trace = func(name string, step int, v []float32) { calls[name]++ }
	res, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if calls["eps_uncond"] != 0 || calls["eps_cond"] != r.Steps {
		t.Errorf("UNet branches %v with CFG 1", calls)
	}
	p.trace = nil
	r.CFG = math.Nextafter32(1, 2) // guided, practically the same scale
	guided, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range res.Latents.Data() {
		if w := guided.Latents.Data()[i]; math.Abs(float64(v-w)) > 1e-3*(1+math.Abs(float64(w))) {
			t.Fatalf("latent %d: %g without the uncond branch, %g with it", i, v, w)
		}
	}
}

func TestCancelBetweenSteps(t *testing.T) {
	p := tinyPipeline(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	res, err := p.Generate(ctx, smallRequest(p), func(pr Progress) {
		calls++
		if pr.Step == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("Generate = %v, %v; want context.Canceled", res, err)
	}
	if calls != 2 {
		t.Errorf("%d progress calls after cancelling at step 2", calls)
	}
}

// Cancelling while the UNet runs stops it before the step ends.
func TestCancelInsideUNet(t *testing.T) {
	p := tinyPipeline(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	after := 0
	p.UNet.Trace = func(name string, _ tensor.Tensor) {
		if name == "middle_block" {
			cancel()
		}
		if ctx.Err() != nil && strings.HasPrefix(name, "output_blocks.") && !strings.Contains(name[len("output_blocks."):], ".") {
			after++
		}
	}
	calls := 0
	_, err := p.Generate(ctx, smallRequest(p), func(Progress) { calls++ })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Generate error %v, want context.Canceled", err)
	}
	if calls != 0 || after != 0 {
		t.Errorf("%d steps finished, %d output blocks ran after cancelling in the middle block", calls, after)
	}
}

func TestBadRequests(t *testing.T) {
	p := tinyPipeline(t)
	m := p.SizeMultiple()
	for _, tc := range []struct {
		name  string
		edit  func(*Request)
		inErr string
	}{
		{"width not a multiple", func(r *Request) { r.Width = m + 1 }, "width"},
		{"height not a multiple", func(r *Request) { r.Height = 2*m - 1 }, "height"},
		{"zero width", func(r *Request) { r.Width = 0 }, "positive"},
		{"negative height", func(r *Request) { r.Height = -m }, "positive"},
		{"absurd width", func(r *Request) { r.Width = 100 * MaxSide / m * m }, "too large"},
		{"zero steps", func(r *Request) { r.Steps = 0 }, "steps"},
		{"too many steps", func(r *Request) { r.Steps = 1001 }, "steps"},
		{"unknown sampler", func(r *Request) { r.Sampler = "heun_pp_9" }, "unknown sampler"},
		{"batch", func(r *Request) { r.BatchSize = MaxBatch + 1 }, "batch"},
		{"NaN guidance", func(r *Request) { r.CFG = float32(math.NaN()) }, "guidance"},
		{"clip skip", func(r *Request) { r.ClipSkip = p.CLIP.Config.NumLayers + 1 }, "clip skip"},
		{"emphasis syntax", func(r *Request) { r.Emphasis, r.Prompt = true, "(fox:1.2.3)" }, "prompt"},
	} {
		r := smallRequest(p)
		tc.edit(&r)
		calls := 0
		_, err := p.Generate(context.Background(), r, func(Progress) { calls++ })
		if err == nil || !strings.Contains(err.Error(), tc.inErr) || !strings.HasPrefix(err.Error(), "pipeline: ") {
			t.Errorf("%s: error %v, want one about %q", tc.name, err, tc.inErr)
		}
		if calls != 0 {
			t.Errorf("%s: %d steps ran", tc.name, calls)
		}
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Sides that are not multiples of the UNet's total downscale (e.g. 24x20
// pixels: latents 12x10 -> 6x5 -> 3x3 -> 2x2) generate: upsampled maps
// are resized to their skip connections.
func TestSizesBetweenMultiples(t *testing.T) {
	p := tinyPipeline(t)
	m := p.SizeMultiple()
	r := smallRequest(p)
	r.Width, r.Height, r.Steps = 12*m, 10*m, 1
	res, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := res.Images[0].Bounds(); b.Dx() != r.Width || b.Dy() != r.Height {
		t.Fatalf("image %v, want %dx%d", b, r.Width, r.Height)
	}
}
