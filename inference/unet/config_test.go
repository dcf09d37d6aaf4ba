package unet

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

func TestDetectConfigSD15(t *testing.T) {
	text := golden.SD15Tensors(t)
	shapes, err := blocks.ParseShapeList(text, Prefix)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DetectConfig(shapes)
	if err != nil {
		t.Fatal(err)
	}
	if want := SD15(); !reflect.DeepEqual(got, want) {
		t.Errorf("DetectConfig(SD1.5 shapes) = %v\nwant SD15() = %v", got, want)
	}
}

// goldenConfig reads the tiny UNet config from its golden JSON file.
func goldenConfig(t *testing.T) Config {
	t.Helper()
	b, err := os.ReadFile(golden.Path(t, "tiny_unet_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ConfigFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigSources(t *testing.T) {
	want := goldenConfig(t)
	// The CompVis params carry the head count; nothing else is SD1.5's.
	var raw struct {
		Config struct {
			ModelChannels int   `json:"model_channels"`
			NumHeads      int   `json:"num_heads"`
			ChannelMult   []int `json:"channel_mult"`
			ContextDim    int   `json:"context_dim"`
		} `json:"config"`
	}
	golden.JSON(t, "tiny_unet_config.json", &raw)
	if want.ModelChannels != raw.Config.ModelChannels || want.NumHeads != raw.Config.NumHeads ||
		!reflect.DeepEqual(want.ChannelMult, raw.Config.ChannelMult) || want.ContextDim != raw.Config.ContextDim {
		t.Fatalf("ConfigFromJSON(tiny_unet_config.json) = %v, file says %+v", want, raw.Config)
	}

	b, err := os.ReadFile(golden.Path(t, "tiny_diffusers/unet/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	diff, err := ConfigFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	// Only the diffusers config gives sample_size; the rest must agree.
	sample := diff.SampleSize
	diff.SampleSize = want.SampleSize
	if !reflect.DeepEqual(diff, want) {
		t.Errorf("diffusers config.json gives %v\nCompVis config gives %v", diff, want)
	}
	var ds struct {
		SampleSize int `json:"sample_size"`
	}
	if err := json.Unmarshal(b, &ds); err != nil || ds.SampleSize != sample {
		t.Errorf("diffusers sample_size read as %d, file says %d (%v)", sample, ds.SampleSize, err)
	}

	src := weights.Safetensors(golden.Open(t, "tiny_unet.safetensors"))
	det, err := Detect(src)
	if err != nil {
		t.Fatal(err)
	}
	det.NumHeads = want.NumHeads // shapes cannot show the head count
	if !reflect.DeepEqual(det, want) {
		t.Errorf("DetectConfig(tiny weights) = %v\nconfig file gives %v", det, want)
	}
}

func TestConfigFromJSONForms(t *testing.T) {
	sd2 := `{"params": {"use_checkpoint": true, "use_fp16": true, "image_size": 32, "in_channels": 4,
		"out_channels": 4, "model_channels": 320, "attention_resolutions": [4, 2, 1], "num_res_blocks": 2,
		"channel_mult": [1, 2, 4, 4], "num_head_channels": 64, "use_spatial_transformer": true,
		"use_linear_in_transformer": true, "transformer_depth": 1, "context_dim": 1024, "legacy": false}}`
	c, err := ConfigFromJSON([]byte(sd2))
	if err != nil {
		t.Fatal(err)
	}
	if !c.UseLinearProjection || c.NumHeadChannels != 64 || c.ContextDim != 1024 {
		t.Errorf("SD2 params: %v", c)
	}
	if h, d := c.heads(640); h != 10 || d != 64 {
		t.Errorf("SD2 heads(640) = %d x %d, want 10 x 64", h, d)
	}
	diffSD2 := `{"block_out_channels": [320, 640, 1280, 1280], "attention_head_dim": [5, 10, 20, 20],
		"cross_attention_dim": 1024, "use_linear_projection": true, "layers_per_block": 2,
		"down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]}`
	d, err := ConfigFromJSON([]byte(diffSD2))
	if err != nil {
		t.Fatal(err)
	}
	c.NumHeads = d.NumHeads // unused when NumHeadChannels is set
	if !reflect.DeepEqual(c, d) {
		t.Errorf("diffusers SD2 = %v\nCompVis SD2 = %v", d, c)
	}
	for _, bad := range []string{
		`[1, 2]`,
		`{"model_channels": "wide"}`,
		`{"use_spatial_transformer": false}`,
		`{"block_out_channels": [320, 500]}`,
		`{"model_channels": 320, "num_heads": 7}`,
	} {
		if _, err := ConfigFromJSON([]byte(bad)); err == nil {
			t.Errorf("ConfigFromJSON(%s) succeeded", bad)
		}
	}
}

func TestDetectConfigErrors(t *testing.T) {
	if _, err := DetectConfig(map[string][]int{}); err == nil {
		t.Error("empty shapes: no error")
	}
	src := weights.Safetensors(golden.Open(t, "tiny_unet.safetensors"))
	shapes := weights.Shapes(src, Prefix)
	delete(shapes, "middle_block.1.transformer_blocks.0.attn2.to_k.weight")
	if _, err := DetectConfig(shapes); err == nil {
		t.Error("missing attn2.to_k: no error")
	}
}
