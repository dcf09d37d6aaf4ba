package pipeline

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

const ioFile = "pipeline_io.safetensors"

// pipelineConfig is pipeline_config.json.
type pipelineConfig struct {
	Prompts        []string `json:"prompts"`
	Negative       string   `json:"negative_prompt"`
	StepsRequested int      `json:"ddim_steps_requested"`
	StepsActual    int      `json:"ddim_steps_actual"`
	Discretize     string   `json:"ddim_discretize"`
	Eta            float64  `json:"eta"`
	CFG            float64  `json:"cfg_scale"`
	LatentShape    []int    `json:"latent_shape"` // [B, C, h, w]
	ScaleFactor    float64  `json:"scale_factor"`
	InitialNoise   string   `json:"initial_noise"` // "torch.manual_seed(42); torch.randn(...)"
	Weights        []string `json:"weights"`
	ImageShape     []int    `json:"image_shape_nhwc"` // [B, H, W, 3]
}

var seedRe = regexp.MustCompile(`manual_seed\((\d+)\)`)

// readConfig reads pipeline_config.json and checks what the test relies on.
func readConfig(t *testing.T) (pipelineConfig, uint64) {
	t.Helper()
	var cfg pipelineConfig
	golden.JSON(t, "pipeline_config.json", &cfg)
	m := seedRe.FindStringSubmatch(cfg.InitialNoise)
	if m == nil {
		t.Fatalf("pipeline_config.json initial_noise %q names no torch.manual_seed", cfg.InitialNoise)
	}
	seed, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Prompts) == 0 || len(cfg.LatentShape) != 4 || len(cfg.ImageShape) != 4 || cfg.Eta != 0 || cfg.Discretize != "uniform" {
		t.Fatalf("pipeline_config.json: unexpected settings %+v", cfg)
	}
	if len(cfg.Prompts) != cfg.LatentShape[0] || len(cfg.Prompts) != cfg.ImageShape[0] {
		t.Fatalf("pipeline_config.json: %d prompts for latent %v and images %v", len(cfg.Prompts), cfg.LatentShape, cfg.ImageShape)
	}
	return cfg, seed
}

// request is the golden run as a Request: one Prompt for the batch when
// every row has the same prompt, else per-image Prompts.
func (cfg pipelineConfig) request(seed uint64) Request {
	r := Request{
		Negative:  cfg.Negative,
		Seed:      seed,
		Steps:     cfg.StepsRequested,
		CFG:       float32(cfg.CFG),
		Sampler:   "ddim",
		Width:     cfg.ImageShape[2],
		Height:    cfg.ImageShape[1],
		BatchSize: len(cfg.Prompts),
	}
	if slices.Equal(cfg.Prompts, slices.Repeat(cfg.Prompts[:1], len(cfg.Prompts))) {
		r.Prompt = cfg.Prompts[0]
	} else {
		r.Prompts = cfg.Prompts
	}
	return r
}

// goldenConfigs reads the tiny models' configs (which shapes cannot fully
// tell: the head counts) as Load overrides.
func goldenConfigs(t testing.TB) LoadOptions {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(golden.Path(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cc, err := clip.ConfigFromJSON(read("tiny_clip_text_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := unet.ConfigFromJSON(read("tiny_unet_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vae.ConfigFromJSON(read("tiny_vae_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return LoadOptions{CLIP: &cc, UNet: &uc, VAE: &vc, Tokenizer: golden.Path(t, "bpe_simple_vocab_16e6.txt.gz")}
}

// tinyPipeline loads the tiny golden model from its diffusers folder.
func tinyPipeline(t testing.TB) *Pipeline {
	t.Helper()
	p, err := Load(context.Background(), golden.Path(t, "tiny_diffusers"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
