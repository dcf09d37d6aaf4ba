package pipeline

import (
	"context"
	"image"
	"image/png"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// The tiny end-to-end txt2img run (CompVis txt2img with DDIM and CFG)
// reproduced tensor by tensor, from the three golden weight files merged
// into one single-file checkpoint and from the same model as a diffusers
// folder.
func TestGoldenTxt2Img(t *testing.T) {
	cfg, seed := readConfig(t)
	for _, tc := range []struct {
		name string
		path func(t *testing.T) string
		opt  func(t *testing.T) LoadOptions
	}{
		{"single_file", func(t *testing.T) string { return golden.MergeFiles(t, cfg.Weights) }, func(t *testing.T) LoadOptions { return goldenConfigs(t) }},
		{"diffusers", func(t *testing.T) string { return golden.Path(t, "tiny_diffusers") }, func(*testing.T) LoadOptions { return LoadOptions{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Load(context.Background(), tc.path(t), tc.opt(t))
			if err != nil {
				t.Fatal(err)
			}
			checkGoldenRun(t, p, cfg, seed)
		})
	}
}

func checkGoldenRun(t *testing.T, p *Pipeline, cfg pipelineConfig, seed uint64) {
	f := golden.Open(t, ioFile)
	want := func(name string) []float32 {
		v, _ := golden.Float32(t, f, name)
		return v
	}
	worst := map[string]float64{} // max |got - want| per golden tensor, logged at the end
	check := func(what string, got []float32, tensor string, want []float32) {
		t.Helper()
		golden.Check(t, what, got, want, golden.Tolerance(t, ioFile, tensor))
		for i := range min(len(got), len(want)) {
			worst[tensor] = max(worst[tensor], math.Abs(float64(got[i])-float64(want[i])))
		}
	}
	defer func() {
		for _, k := range slices.Sorted(maps.Keys(worst)) {
			t.Logf("%-24s max abs error %.3g", k, worst[k])
		}
	}()

	// Token ids of each row's prompt, and of the negative prompt.
	for _, tc := range []struct {
		name  string
		texts []string
	}{
		{"uncond_input_ids", slices.Repeat([]string{cfg.Negative}, len(cfg.Prompts))},
		{"cond_input_ids", cfg.Prompts},
	} {
		ids, shape, err := f.Int64(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		encs, err := p.EncodePrompts(context.Background(), tc.texts, TextOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, e := range encs {
			for _, c := range e.Chunks {
				got = append(got, int64s(c.IDs[:])...)
			}
		}
		if !slices.Equal(got, ids) {
			t.Errorf("%s = %v, want %v (shape %v)", tc.name, got, ids, shape)
		}
	}

	// One run, recording the intermediates.
	n := cfg.LatentShape[1] * cfg.LatentShape[2] * cfg.LatentShape[3] * cfg.LatentShape[0]
	steps := map[string][][]float32{}
	single := map[string][]float32{}
	p.trace = func(name string, step int, v []float32) {
		v = slices.Clone(v)
		switch name {
		case "eps_uncond", "eps_cond", "x", "pred_x0":
			if step != len(steps[name]) {
				t.Errorf("trace %s: step %d after %d steps", name, step, len(steps[name]))
			}
			steps[name] = append(steps[name], v)
		default:
			single[name] = v
		}
	}
	calls := 0
	res, err := p.Generate(context.Background(), cfg.request(seed), func(pr Progress) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls != cfg.StepsActual {
		t.Errorf("%d progress calls, want %d", calls, cfg.StepsActual)
	}

	for _, name := range []string{"cond_embedding", "uncond_embedding"} {
		check(name, single[name], name, want(name)) // [B, 77, D]: a row per image
	}
	// x_T is an input of the reference: it matches torch.randn as package
	// rng does (the vectorised-kernel tolerance of the RNG goldens).
	golden.Check(t, "x_T", single["x_T"], want("x_T"), golden.Tolerance(t, "rng_torch_randn.safetensors", "x_T"))

	// Timesteps: the stored DDIM set (ascending) and the per-step model t.
	ts, _, err := f.Int64("ddim_timesteps")
	if err != nil {
		t.Fatal(err)
	}
	modelT, _, err := f.Int64("step_model_t")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int64, len(res.Timesteps))
	for i, v := range res.Timesteps {
		got[i] = int64(v)
		if float64(got[i]) != v {
			t.Errorf("timestep %d = %g, not an integer", i, v)
		}
	}
	if !slices.Equal(got, modelT) {
		t.Errorf("model timesteps %v, want %v", got, modelT)
	}
	if asc := slices.Sorted(slices.Values(got)); !slices.Equal(asc, ts) {
		t.Errorf("DDIM timesteps %v, want %v", asc, ts)
	}
	if len(got) != cfg.StepsActual {
		t.Errorf("%d steps run, want %d", len(got), cfg.StepsActual)
	}

	// Per step: UNet outputs before guidance, latents, clean estimates.
	perStep := func(name, tensor string, offset int) {
		all := want(tensor)
		for i, v := range steps[name] {
			lo := (i + offset) * n
			if lo+n > len(all) {
				t.Errorf("%s: step %d beyond the golden %d values", name, i, len(all))
				return
			}
			check(tensor+"["+itoa(i+offset)+"]", v, tensor, all[lo:lo+n])
		}
		if len(steps[name]) != cfg.StepsActual {
			t.Errorf("%s recorded for %d steps, want %d", name, len(steps[name]), cfg.StepsActual)
		}
	}
	perStep("eps_uncond", "step_eps_uncond", 0)
	perStep("eps_cond", "step_eps_cond", 0)
	perStep("x", "step_x", 1)
	perStep("pred_x0", "step_pred_x0", 0)
	golden.Check(t, "step_x[0]", single["x_T"], want("step_x")[:n], golden.Tolerance(t, "rng_torch_randn.safetensors", "x_T"))

	// Final latent, decoding, image conversion.
	final := res.Latents.Data()
	check("final_latent", final, "final_latent", want("final_latent"))
	div := make([]float32, len(final))
	for i, v := range final {
		div[i] = v / p.VAE.Config.ScaleFactor
	}
	check("latent_div_scale_factor", div, "latent_div_scale_factor", want("latent_div_scale_factor"))
	dec := res.Decoded.Data()
	check("decoded", dec, "decoded", want("decoded"))
	img01 := make([]float32, len(dec))
	for i, v := range dec {
		img01[i] = min(max((v+1)/2, 0), 1)
	}
	check("image_01", img01, "image_01", want("image_01"))

	wantU8 := goldenUint8(t, f)
	if len(res.Images) != cfg.ImageShape[0] {
		t.Fatalf("%d images, want %d", len(res.Images), cfg.ImageShape[0])
	}
	h, w := cfg.ImageShape[1], cfg.ImageShape[2]
	for i, img := range res.Images {
		if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
			t.Fatalf("image %d is %v, want %dx%d", i, b, w, h)
		}
		compareUint8(t, "image_uint8_nhwc", img, wantU8[i*h*w*3:(i+1)*h*w*3])
		pngPath := golden.Path(t, "pipeline_"+itoa(i)+".png")
		if fh, err := os.Open(pngPath); err == nil {
			ref, err := png.Decode(fh)
			fh.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(nhwc(ref), wantU8[i*h*w*3:(i+1)*h*w*3]) {
				t.Errorf("golden %s differs from image_uint8_nhwc", pngPath)
			}
			compareUint8(t, pngPath, img, nhwc(ref))
		} else {
			t.Errorf("golden image: %v", err)
		}
	}
}

func goldenUint8(t *testing.T, f *safetensors.File) []uint8 {
	t.Helper()
	b, info, err := f.Bytes("image_uint8_nhwc")
	if err != nil {
		t.Fatal(err)
	}
	if info.DType != "U8" {
		t.Fatalf("image_uint8_nhwc has dtype %s", info.DType)
	}
	return b
}

// nhwc returns an image's RGB bytes in row-major H, W, 3 order.
func nhwc(img image.Image) []uint8 {
	b := img.Bounds()
	out := make([]uint8, 0, b.Dx()*b.Dy()*3)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			out = append(out, uint8(r>>8), uint8(g>>8), uint8(bl>>8))
		}
	}
	return out
}

// compareUint8 applies the golden rule for 8-bit images: every value at
// most 1 level off and at least 99% exact.
func compareUint8(t *testing.T, what string, img image.Image, want []uint8) {
	t.Helper()
	got := nhwc(img)
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	exact, worst := 0, 0
	for i := range got {
		d := int(got[i]) - int(want[i])
		if d == 0 {
			exact++
		}
		worst = max(worst, d, -d)
	}
	frac := float64(exact) / float64(len(got))
	if worst > 1 || frac < 0.99 {
		t.Errorf("%s: %.2f%% exact, worst %d levels off; want >= 99%% and <= 1", what, 100*frac, worst)
	}
	t.Logf("%s: %.2f%% exact, worst %d level(s) off", what, 100*frac, worst)
}

func int64s(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
