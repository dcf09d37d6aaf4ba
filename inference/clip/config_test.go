package clip

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

// goldenConfig reads the tiny text encoder config from its golden JSON.
func goldenConfig(t *testing.T) Config {
	t.Helper()
	b, err := os.ReadFile(golden.Path(t, "tiny_clip_text_config.json"))
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
			Width   int `json:"width"`
			Layers  int `json:"layers"`
			Heads   int `json:"heads"`
			Context int `json:"context_length"`
		} `json:"config"`
	}
	golden.JSON(t, "tiny_clip_text_config.json", &raw)
	if want.HiddenSize != raw.Config.Width || want.NumLayers != raw.Config.Layers ||
		want.NumHeads != raw.Config.Heads || want.MaxPositions != raw.Config.Context {
		t.Fatalf("ConfigFromJSON(tiny_clip_text_config.json) = %v, file says %+v", want, raw.Config)
	}

	b, err := os.ReadFile(golden.Path(t, "tiny_diffusers/text_encoder/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	hf, err := ConfigFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(hf, want) {
		t.Errorf("HF config.json gives %v\nOpenAI-style config gives %v", hf, want)
	}

	det, err := Detect(weights.Safetensors(golden.Open(t, "tiny_clip_text.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	det.NumHeads = want.NumHeads // shapes cannot show the head count
	if !reflect.DeepEqual(det, want) {
		t.Errorf("DetectConfig(tiny weights) = %v\nconfig file gives %v", det, want)
	}
}

func TestConfigFromJSONErrors(t *testing.T) {
	for _, bad := range []string{
		`"clip"`,
		`{"hidden_size": 768, "num_attention_heads": 5}`,
		`{"hidden_act": "relu"}`,
		`{"layers": "twelve"}`,
	} {
		if _, err := ConfigFromJSON([]byte(bad)); err == nil {
			t.Errorf("ConfigFromJSON(%s) succeeded", bad)
		}
	}
	if _, err := DetectConfig(map[string][]int{"embeddings.token_embedding.weight": {10, 8}}); err == nil {
		t.Error("DetectConfig without position embedding: no error")
	}
}
