package checkpoint

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/internal/ckpttest"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// TestUnflattenUNet rebuilds every UNet name of SD1.5 and of the golden
// tiny UNet from its LitEma buffer name.
func TestUnflattenUNet(t *testing.T) {
	var names []string
	for n := range sd15Specs(t) {
		if strings.HasPrefix(n, unetPrefix) {
			names = append(names, n)
		}
	}
	if len(names) < 600 {
		t.Fatalf("only %d SD1.5 UNet names", len(names))
	}
	c := mustOpen(t, filepath.Join(golden.Dir(t), "tiny_unet.safetensors"), Options{})
	if len(c.Names()) == 0 {
		t.Fatal("golden tiny UNet has no tensors")
	}
	names = append(names, c.Names()...)
	for _, n := range names {
		dotted := strings.TrimPrefix(n, "model.")
		got, ok := unflattenUNet(flatten(dotted))
		if !ok || got != dotted {
			t.Errorf("unflatten(%s) = %q %v, want %s", flatten(dotted), got, ok, dotted)
		}
	}
	for _, bad := range []string{"", "diffusion_model", "diffusion_modelinput_blocks1weight", "diffusion_modelfoo0weight", "input_blocks00weight"} {
		if got, ok := unflattenUNet(bad); ok {
			t.Errorf("unflatten(%q) = %q, want failure", bad, got)
		}
	}
}

// emaFile writes a checkpoint whose UNet weight is 1 under model.* and 2
// under model_ema.*; withModel false drops the model.* copy.
func emaFile(t *testing.T, withModel bool) string {
	ts := []ckpttest.Tensor{
		{Name: "model_ema.diffusion_modelinput_blocks00weight", DType: "F32", Shape: []int{1, 1, 1, 1}, Data: f32(2)},
		{Name: "model_ema.diffusion_modelout2bias", DType: "F32", Shape: []int{1}, Data: f32(20)},
		{Name: "model_ema.decay", DType: "F32", Shape: []int{}, Data: f32(0.9999)},
		{Name: "model_ema.num_updates", DType: "I32", Shape: []int{}, Data: []byte{1, 0, 0, 0}},
	}
	if withModel {
		ts = append(ts,
			ckpttest.Tensor{Name: "model.diffusion_model.input_blocks.0.0.weight", DType: "F32", Shape: []int{1, 1, 1, 1}, Data: f32(1)},
			ckpttest.Tensor{Name: "model.diffusion_model.out.2.bias", DType: "F32", Shape: []int{1}, Data: f32(10)})
	}
	return writeFile(t, t.TempDir(), "ema.ckpt", ckpttest.Checkpoint(ts, ckpttest.Options{Nested: true}))
}

func TestEMAChoice(t *testing.T) {
	cases := []struct {
		name      string
		withModel bool
		opt       Options
		want      float32
		ema       bool
	}{
		{"full file, default: model weights", true, Options{}, 1, false},
		{"full file, UseEMA", true, Options{UseEMA: true}, 2, true},
		{"EMA-only UNet", false, Options{}, 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ck := mustOpen(t, emaFile(t, c.withModel), c.opt)
			v, _, err := ck.Float32(unetPrefix + "input_blocks.0.0.weight")
			if err != nil || v[0] != c.want {
				t.Fatalf("got %v %v, want %v", v, err, c.want)
			}
			if b, _, _ := ck.Float32(unetPrefix + "out.2.bias"); b[0] != 10*c.want {
				t.Errorf("out.2.bias %v", b)
			}
			if a := ck.arch(); a.EMA != c.ema {
				t.Errorf("Arch.EMA %v, want %v", a.EMA, c.ema)
			}
			if !ck.Has("model_ema.decay") || ck.Has(unetPrefix+"decay") {
				t.Errorf("EMA bookkeeping misplaced: %v", ck.Names())
			}
		})
	}
}
