package vae

import (
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

// goldenConfig reads the tiny autoencoder config from its golden JSON.
func goldenConfig(t *testing.T) Config {
	t.Helper()
	b, err := os.ReadFile(golden.Path(t, "tiny_vae_config.json"))
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
	var raw struct {
		Config struct {
			DD struct {
				Ch     int   `json:"ch"`
				ChMult []int `json:"ch_mult"`
				NRes   int   `json:"num_res_blocks"`
			} `json:"ddconfig"`
		} `json:"config"`
		Scale float32 `json:"scale_factor"`
	}
	golden.JSON(t, "tiny_vae_config.json", &raw)
	if want.Ch != raw.Config.DD.Ch || !reflect.DeepEqual(want.ChMult, raw.Config.DD.ChMult) ||
		want.NumResBlocks != raw.Config.DD.NRes || want.ScaleFactor != raw.Scale {
		t.Fatalf("ConfigFromJSON(tiny_vae_config.json) = %v, file says %+v", want, raw)
	}

	b, err := os.ReadFile(golden.Path(t, "tiny_diffusers/vae/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	diff, err := ConfigFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(diff, want) {
		t.Errorf("diffusers config.json gives %v\nCompVis config gives %v", diff, want)
	}

	det, err := Detect(weights.Safetensors(golden.Open(t, "tiny_vae.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	det.ScaleFactor = want.ScaleFactor // not in the weights
	if !reflect.DeepEqual(det, want) {
		t.Errorf("DetectConfig(tiny weights) = %v\nconfig file gives %v", det, want)
	}
}

func TestConfigFromJSONForms(t *testing.T) {
	c, err := ConfigFromJSON([]byte(`{"params": {"embed_dim": 4, "ddconfig": {"ch": 64, "ch_mult": [1, 2, 4],
		"resolution": 256, "attn_resolutions": [64], "num_res_blocks": 1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.AttnLevels, []int{2}) || c.Ch != 64 {
		t.Errorf("attn_resolutions [64] at resolution 256: %v, want attention at level 2", c)
	}
	for _, bad := range []string{
		`[]`,
		`{"ddconfig": {"double_z": false}}`,
		`{"block_out_channels": [128, 200]}`,
		`{"embed_dim": "four"}`,
		`{"ddconfig": {"ch": 48}}`,
	} {
		if _, err := ConfigFromJSON([]byte(bad)); err == nil {
			t.Errorf("ConfigFromJSON(%s) succeeded", bad)
		}
	}
}
