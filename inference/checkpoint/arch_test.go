package checkpoint

import (
	"errors"
	"strings"
	"testing"
)

// clone copies a spec map.
func clone(m map[string]spec) map[string]spec {
	out := make(map[string]spec, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestSD15Shapes validates the real SD1.5 name/shape set as SD 1.x and
// rejects it with one key or shape swapped for another model's.
func TestSD15Shapes(t *testing.T) {
	sd15 := sd15Specs(t)
	c := fromShapes(sd15)
	a, err := c.Architecture()
	if err != nil {
		t.Fatal(err)
	}
	if a.Family != SD1 || a.InChannels != 4 || a.ModelChannels != 320 || a.ContextDim != 768 || a.TextWidth != 768 ||
		!a.UNet || !a.VAE || !a.TextEncoder || a.EMA || a.Variant != "" {
		t.Errorf("arch %+v", a)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// Every SD1.5 tensor checks against its own shape.
	want := map[string][]int{}
	for n, s := range sd15 {
		want[n] = s.shape
	}
	if err := c.Require(want); err != nil {
		t.Errorf("Require: %v", err)
	}

	const toK = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
	swaps := []struct {
		name   string
		edit   func(m map[string]spec)
		family Family
		want   string
		kind   error
	}{
		{"OpenCLIP text encoder", func(m map[string]spec) {
			m["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"] = spec{"F32", []int{3072, 1024}}
		}, SD2, "SD 2.x is not supported yet", ErrUnsupported},
		{"1024-wide context", func(m map[string]spec) { m[toK] = spec{"F32", []int{320, 1024}} }, SD2, "SD 2.x", ErrUnsupported},
		{"linear proj_in", func(m map[string]spec) {
			m["model.diffusion_model.input_blocks.1.1.proj_in.weight"] = spec{"F32", []int{320, 320}}
		}, SD2, "SD 2.x", ErrUnsupported},
		{"SDXL conditioner", func(m map[string]spec) {
			m["conditioner.embedders.0.transformer.text_model.final_layer_norm.weight"] = spec{"F32", []int{768}}
		}, SDXL, "SDXL is not supported yet", ErrUnsupported},
		{"SDXL label_emb", func(m map[string]spec) {
			m["model.diffusion_model.label_emb.0.0.weight"] = spec{"F32", []int{1280, 2816}}
		}, SDXL, "SDXL", ErrUnsupported},
		{"inpainting", func(m map[string]spec) {
			m["model.diffusion_model.input_blocks.0.0.weight"] = spec{"F32", []int{320, 9, 3, 3}}
		}, SD1, "SD 1.x inpainting model (9 UNet input channels)", ErrUnsupported},
		{"no UNet", func(m map[string]spec) {
			for n := range m {
				if strings.HasPrefix(n, "model.") {
					delete(m, n)
				}
			}
		}, FamilyUnknown, "not a Stable Diffusion model", ErrFormat},
	}
	for _, s := range swaps {
		t.Run(s.name, func(t *testing.T) {
			m := clone(sd15)
			s.edit(m)
			a, err := fromShapes(m).Architecture()
			if a.Family != s.family || err == nil || !strings.Contains(err.Error(), s.want) || !errors.Is(err, s.kind) {
				t.Errorf("family %v, err %v; want %v and an error containing %q", a.Family, err, s.family, s.want)
			}
		})
	}
}

// TestValidateCatches covers incomplete and inconsistent SD1 key sets.
func TestValidateCatches(t *testing.T) {
	sd15 := sd15Specs(t)
	cases := []struct {
		name string
		edit func(m map[string]spec)
		want string
	}{
		{"no VAE", func(m map[string]spec) {
			for n := range m {
				if strings.HasPrefix(n, "first_stage_model.") {
					delete(m, n)
				}
			}
		}, "has no VAE (first_stage_model.*) weights"},
		{"missing core tensor", func(m map[string]spec) {
			delete(m, "first_stage_model.post_quant_conv.weight")
		}, "missing first_stage_model.post_quant_conv.weight"},
		{"text encoder of another width", func(m map[string]spec) {
			m["cond_stage_model.transformer.text_model.final_layer_norm.weight"] = spec{"F32", []int{512}}
		}, "text encoder is 512 wide but the UNet attends to 768"},
		{"latent channels", func(m map[string]spec) {
			m["first_stage_model.post_quant_conv.weight"] = spec{"F32", []int{16, 16, 1, 1}}
		}, "VAE latent channels 16"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := clone(sd15)
			c.edit(m)
			err := fromShapes(m).Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrFormat) {
				t.Errorf("got %v, want an ErrFormat containing %q", err, c.want)
			}
		})
	}
}

func TestLookalikes(t *testing.T) {
	cases := []struct {
		names []string
		want  string
	}{
		{[]string{"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", "lora_te_text_model_x.alpha"}, "LoRA"},
		{[]string{"string_to_param.*", "string_to_token.*"}, "textual-inversion"},
		{[]string{"encoder.conv_in.weight", "decoder.conv_in.weight", "quant_conv.weight"}, "standalone VAE"},
		{[]string{"control_model.input_blocks.0.0.weight", "control_model.input_hint_block.0.weight", "x"}, "ControlNet"},
		{[]string{"a", "b", "c"}, "no UNet weights"},
	}
	for _, c := range cases {
		m := map[string]spec{}
		for _, n := range c.names {
			m[n] = spec{"F32", []int{1}}
		}
		_, err := fromShapes(m).Architecture()
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrFormat) {
			t.Errorf("%v: got %v, want %q", c.names, err, c.want)
		}
	}
}

// TestRequireReportsAll lists every missing and misshapen tensor at once.
func TestRequireReportsAll(t *testing.T) {
	c := fromShapes(map[string]spec{
		"p.a": {"F32", []int{2, 3}},
		"p.b": {"F16", []int{4}},
		"p.c": {"F32", []int{5, 6, 7}},
	})
	v := c.Prefix("p.")
	if err := v.Require(map[string][]int{"a": {2, 3}, "b": nil, "c": {5, -1, 7}}); err != nil {
		t.Errorf("matching set: %v", err)
	}
	err := v.Require(map[string][]int{"a": {3, 2}, "b": {4}, "c": {5, 6}, "x": {1}, "y": nil})
	var re *RequireError
	if !errors.As(err, &re) || !errors.Is(err, ErrFormat) {
		t.Fatalf("got %v", err)
	}
	if strings.Join(re.Missing, ",") != "p.x,p.y" || len(re.Mismatched) != 2 ||
		re.Mismatched[0].Name != "p.a" || re.Mismatched[1].Name != "p.c" {
		t.Errorf("missing %v mismatched %+v", re.Missing, re.Mismatched)
	}
	for _, s := range []string{"2 tensors missing, 2 with the wrong shape", "missing p.x", "p.a is [2 3], want [3 2]"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q lacks %q", err, s)
		}
	}
}
